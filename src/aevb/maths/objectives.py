"""The SGVB estimators (section 2.3) and the importance-sampled log-likelihood.

Each objective is a pure function of (model, x, eps): x is a batch [N, D], eps [L, N, J] holds the
standard normal noise of the reparameterization z = mu + sigma * eps, and the result is one value
per data point, [N], in nats. Callers reduce (the mean over a minibatch gives eq. 8 divided by N).
The same functions serve training (L = 1) and evaluation (L = K = 5000, in chunks).
"""
from __future__ import annotations

import torch

from .distributions import kl_to_prior, log_mean_exp, q_sample
from .protocol import LatentVariableModel


def complete_log_likelihood(model: LatentVariableModel, x: torch.Tensor,
                            z: torch.Tensor) -> torch.Tensor:
    """log p_theta(x, z) = log p_theta(x|z) + log p(z) for x [N, D], z [..., N, J]; [..., N] nats.

    The numerator of every importance weight, the wake phase's and EM's M-step objective, and
    up to the constant log p_theta(x) the log posterior density of z that HMC samples.
    """
    return model.decode(z).log_prob(x) + model.prior().log_prob(z)


def log_weights(model: LatentVariableModel, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """log p_theta(x, z_l) - log q_phi(z_l|x) for z_l = mu + sigma * eps_l; returns [L, N].

    Each entry is a one-sample unbiased estimate of the lower bound; their exponentials are
    unbiased estimates of p_theta(x).
    """
    q = model.encode(x)
    z = q_sample(q, eps)  # [L, N, J]
    return complete_log_likelihood(model, x, z) - q.log_prob(z)


def elbo_a(model: LatentVariableModel, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Generic SGVB estimator A (eq. 6), [N] nats:

    L^A(theta, phi; x) = (1/L) sum_l [log p_theta(x, z_l) - log q_phi(z_l|x)].
    """
    return log_weights(model, x, eps).mean(0)


def elbo_b(model: LatentVariableModel, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """SGVB estimator B (eq. 7, Gaussian case eq. 10), [N] nats:

    L^B(theta, phi; x) = -KL(q_phi(z|x) || p(z)) + (1/L) sum_l log p_theta(x|z_l),

    with the KL term in closed form (appendix B) for the N(0, I) prior, so only the
    reconstruction term is sampled. It is `elbo_beta` at beta = 1.
    """
    return elbo_beta(model, x, eps, 1.0)


def elbo_beta(model: LatentVariableModel, x: torch.Tensor, eps: torch.Tensor,
              beta=1.0) -> torch.Tensor:
    """Estimator B with the KL term weighted by beta (Higgins et al. 2017), [N] nats:

    (1/L) sum_l log p_theta(x|z_l) - beta KL(q_phi(z|x) || p(z)).

    beta = 1 is estimator B, the bound; beta < 1 (as during a KL warm-up) and beta > 1 trade
    reconstruction against the prior and are bounds on log p(x) only for beta >= 1. `beta` is
    a float or a 0-d tensor (a tensor lets a compiled step change it without recompiling).
    The KL is exact where the prior has a closed form (`distributions.kl_to_prior`).
    """
    q = model.encode(x)
    z = q_sample(q, eps)  # [L, N, J]
    reconstruction = model.decode(z).log_prob(x).mean(0)  # [N]
    kl = kl_to_prior(q, model.prior(), z)  # [N]
    return reconstruction - beta * kl  # (1.0 * kl is kl exactly: estimator B's very bits)


def warmup_beta(samples: int, warmup_samples: int, beta: float = 1.0) -> float:
    """The KL weight after `samples` training samples of a linear warm-up (Sonderby et al.
    2016): beta * samples / warmup_samples, reaching `beta` exactly at the end of the warm-up
    and staying there; `beta` throughout when warmup_samples is 0."""
    if warmup_samples <= 0 or samples >= warmup_samples:
        return beta
    return beta * samples / warmup_samples


def iwae_bound(model: LatentVariableModel, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound of Burda et al. (2015) with k = eps.shape[0], [N] nats:

    L_k(x) = E[log (1/k) sum_i p_theta(x, z_i) / q_phi(z_i|x)],  z_i ~ q_phi(z|x).

    For given noise, the importance-sampled estimate of log p_theta(x) with q_phi(z|x) as
    proposal; as a training objective its gradient weights each sample by its normalised
    importance weight. L_1 is estimator A, and L_k rises to log p(x) as k grows. For large K
    use `aevb.evaluation.importance.importance_log_likelihood`, which chunks over K.
    """
    return log_mean_exp(log_weights(model, x, eps), dim=0)


def minibatch_estimate(per_example: torch.Tensor, dataset_size: int) -> torch.Tensor:
    """The minibatch estimate of the full-data bound (eq. 8), in nats for the whole dataset:

    L(theta, phi; X) ~ L^M(theta, phi; X^M) = (N / M) sum_{i=1}^{M} L~(theta, phi; x^(i)),

    where per_example [M] holds the estimates L~ for a minibatch X^M drawn from N data points.
    Unbiased: its average over all minibatches is the sum of L~ over the dataset.
    """
    return dataset_size / per_example.shape[0] * per_example.sum()


def wake_objective(model: LatentVariableModel, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Wake phase of wake-sleep (Hinton et al. 1995), [N] nats: (1/L) sum_l log p_theta(x, z_l)
    with z_l ~ q_phi(z|x) held fixed, so only the generative model theta learns from it."""
    z = q_sample(model.encode(x), eps).detach()  # [L, N, J]
    return complete_log_likelihood(model, x, z).mean(0)


def sleep_objective(model: LatentVariableModel, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sleep phase, [N] nats: log q_phi(z|x) on fantasies (z, x) ~ p(z) p_theta(x|z) (from
    `VAE.dream`), so the recognition model learns to invert the generative one. Unlike the
    SGVB bound, wake and sleep optimise different objectives, neither a bound on log p(x)."""
    return model.encode(x).log_prob(z)


ESTIMATORS = {"A": elbo_a, "B": elbo_b, "iwae": iwae_bound}
