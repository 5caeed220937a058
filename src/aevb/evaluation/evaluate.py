"""Honest evaluation: the average lower bound and the importance-sampled log-likelihood.

log p_theta(x) ~ log (1/K) sum_k p_theta(x, z_k) / q_phi(z_k|x), z_k ~ q_phi(z|x), with
K = 5000 as in Burda et al. (2015). Both numbers are in nats per data point, natural sign
(negative for binary data). The noise and, for binary data, the binarization of the evaluated
set come from fixed seeds, so evaluating one model twice gives identical numbers.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..maths import hmc
from ..maths.objectives import complete_log_likelihood, elbo_b
from .importance import importance_log_likelihood
from .latents import latent_use

# Seed offsets per split: (binarization, noise of the bound). Training and `aevb evaluate`
# use the same ones, so the bound `evaluate` reports equals the last one in metrics.jsonl.
SEED_OFFSETS = {"train": (1, 3), "test": (2, 4), "data": (6, 7)}


def evaluation_set(x: torch.Tensor, split: str, seed: int, binarize: bool) -> torch.Tensor:
    """The fixed version of a split that every evaluation of a run sees."""
    return fixed_binarization(x, seed + SEED_OFFSETS[split][0]) if binarize else x


def fixed_binarization(x: torch.Tensor, seed: int) -> torch.Tensor:
    """One Bernoulli draw per pixel from a fixed seed, so every evaluation sees the same bits."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    return torch.bernoulli(x, generator=gen)


@torch.no_grad()
def per_example_bound(model, x: torch.Tensor, seed: int, batch: int = 2000,
                      y: torch.Tensor | None = None) -> torch.Tensor:
    """Estimator B with L = 1 and noise fixed by `seed` for every row of x [N, D]; [N] nats.
    A model with a label takes the rows' labels y [N] (`labelled.label_bound`)."""
    from .labelled import label_bound

    gen = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        eps = torch.randn(1, len(xb), model.config.latent_dim, generator=gen, device=x.device,
                          dtype=xb.dtype)
        out.append(elbo_b(model, xb, eps) if not getattr(model.config, "classes", 0) else
                   label_bound(model, xb, None if y is None else y[start:start + batch], eps))
    return torch.cat(out)


def average_bound(model, x: torch.Tensor, seed: int, batch: int = 2000,
                  y: torch.Tensor | None = None) -> float:
    """Mean of `per_example_bound` over x, in nats per data point."""
    return float(per_example_bound(model, x, seed, batch, y).double().mean())


@torch.no_grad()
def hmc_harmonic_log_likelihood(model, x: torch.Tensor, n_samples: int = 50,
                                n_leapfrog: int = 4, burn_in: int = 100,
                                seed: int = 0, use_encoder: bool = True) -> torch.Tensor:
    """The paper's appendix D estimate of log p_theta(x) for every row of x [N, D]; [N] nats.

    1. draw n_samples z from the posterior p_theta(z|x) by HMC (started at the mean of q, or
       at z = 0 when `use_encoder` is False or the model has no encoder, as after MCEM),
    2. fit a Gaussian q(z) with full covariance to them, 3. draw n_samples fresh posterior
    samples z_l and use
        p_theta(x) ~ [ (1/L) sum_l q(z_l) / (p(z_l) p_theta(x|z_l)) ]^-1,
    unbiased for 1/p(x) because E_posterior[q(z) / p(x, z)] = 1/p(x) for any density q.
    Reliable only for a low-dimensional z (the paper used N_z = 3), where the fit is good.
    """
    gen = torch.Generator(device=x.device).manual_seed(seed)

    def log_joint(z):  # [N, J] -> [N]
        return complete_log_likelihood(model, x, z)

    z0 = model.encode(x).mean if use_encoder and hasattr(model, "encode") else \
        torch.zeros(len(x), model.config.latent_dim, dtype=x.dtype, device=x.device)
    first = hmc.sample(log_joint, z0, n_samples, n_leapfrog, burn_in, generator=gen)
    mean = first.z.mean(0)  # [N, J]
    centred = first.z - mean  # [S, N, J]
    cov = torch.einsum("sni,snj->nij", centred, centred) / (n_samples - 1)
    cov = cov + 1e-6 * torch.eye(cov.shape[-1], dtype=x.dtype, device=x.device)
    q = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    second = hmc.sample(log_joint, first.z[-1], n_samples, n_leapfrog, burn_in=0,
                        step_size=first.step_size, generator=gen)
    log_ratio = torch.stack([q.log_prob(z) - log_joint(z) for z in second.z])  # [S, N]
    return -(torch.logsumexp(log_ratio, dim=0) - math.log(n_samples))


@dataclass(frozen=True)
class Evaluation:
    split: str
    n: int
    elbo: float | None  # mean lower bound (estimator B, L = 1), nats per data point; None
    # for a model without a trained encoder (MCEM)
    log_likelihood: float  # mean importance-sampled log p(x), nats per data point
    importance_samples: int  # K, or for method hmc-harmonic the HMC draws per data point
    seconds: float
    method: str
    per_example: np.ndarray = field(repr=False)  # [n] log p(x) estimates
    active_units: int | None = None  # latent dimensions in use (aevb.evaluation.latents); None: no encoder
    kl_per_dimension: list | None = None  # E_x KL(q(z_j|x) || N(0, 1)) per dimension, nats
    # A model with a posterior over theta (full-vb, appendix F): log_likelihood is then the
    # predictive log E_q(theta)[p(x|theta)], elbo the appendix F bound per point, and this
    # lists sigma of q(theta) per decoder tensor (`full_vb.LayerStd` as dicts).
    posterior_std: list | None = None
    # for two stochastic layers: [active units of z1, of z2] beside the layers' sizes
    active_units_per_layer: list | None = None
    layer_sizes: list | None = None
    # a model with a classifier q(y|x) (M2): the share of rows whose most probable class is
    # not their label
    error: float | None = None
    # a conditional VAE (a label, no classifier): elbo and log_likelihood are of log p(x|y)
    given_label: bool = False

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("per_example")
        return d


METHODS = ("importance", "hmc-harmonic")


def evaluate(model, x: torch.Tensor, *, split: str, importance_samples: int = 5000,
             batch_size: int = 100, seed: int = 0, method: str = "importance",
             use_encoder: bool = True, noise: torch.Tensor | None = None,
             n_data: int | None = None, y: torch.Tensor | None = None) -> Evaluation:
    """Bound and importance-sampled log-likelihood of `model` on the rows of x [N, D].

    x should come from `evaluation_set`; `seed` is the run's seed. use_encoder=False (a model
    trained by MCEM, whose q_phi never learned) allows only method hmc-harmonic, and no bound.
    A model with a posterior over theta (full-vb) is scored by `_evaluate_full_vb`; n_data,
    its training set's size, spreads the KL over theta in its bound. A model with a label
    takes the rows' labels y [N] (`_evaluate_labelled`).
    """
    if getattr(model.config, "classes", 0):
        return _evaluate_labelled(model, x, y, split=split, importance_samples=importance_samples,
                                 batch_size=batch_size, seed=seed)
    if getattr(model, "theta_posterior", None) is not None:
        return _evaluate_full_vb(model, x, split, importance_samples, seed, n_data)
    start = time.perf_counter()
    x = x.to(next(model.parameters()).device)
    elbo = average_bound(model, x, seed + SEED_OFFSETS[split][1]) if use_encoder else None
    if method == "importance":
        ll = importance_log_likelihood(model, x, importance_samples, seed + 5, batch_size,
                                       noise=noise)
    else:
        ll = torch.cat([hmc_harmonic_log_likelihood(model, x[i:i + batch_size],
                                                    n_samples=importance_samples, seed=seed + 5,
                                                    use_encoder=use_encoder)
                        for i in range(0, len(x), batch_size)])
    use = latent_use(model, x) if use_encoder and len(x) > 1 else None
    return Evaluation(split, len(x), elbo, float(ll.double().mean()), importance_samples,
                      time.perf_counter() - start, method, ll.cpu().numpy(),
                      use.active_units if use else None, use.kl_per_dimension if use else None,
                      **_per_layer(use))


def _per_layer(use) -> dict:
    """Evaluation's per-layer fields from a LatentUse: set only for several layers."""
    if use is None or len(use.layer_sizes) < 2:
        return {}
    return {"active_units_per_layer": list(use.active_per_layer),
            "layer_sizes": list(use.layer_sizes)}


def _evaluate_full_vb(model, x: torch.Tensor, split: str, k: int, seed: int,
                      n_data: int | None) -> Evaluation:
    """The appendix F bound, the predictive log-likelihood over K (theta, z) pairs and the
    posterior's widths of a full-vb model (`aevb.full_vb`)."""
    from ..full_vb import average_full_vb_bound, std_summary
    from .importance import predictive_log_likelihood

    start = time.perf_counter()
    x = x.to(next(model.parameters()).device)
    elbo = average_full_vb_bound(model, x, n_data, seed + SEED_OFFSETS[split][1]) \
        if n_data else None
    ll = predictive_log_likelihood(model, x, k, seed + 5)
    use = latent_use(model, x) if len(x) > 1 else None
    return Evaluation(split, len(x), elbo, float(ll.double().mean()), k,
                      time.perf_counter() - start, "importance", ll.cpu().numpy(),
                      use.active_units if use else None, use.kl_per_dimension if use else None,
                      [asdict(s) for s in std_summary(model)])


def _evaluate_labelled(model, x: torch.Tensor, y: torch.Tensor | None, *, split: str,
                      importance_samples: int, batch_size: int, seed: int):
    """`evaluate` for a model with a label (`labelled`): the bound and log-likelihood above, the
    latent use of q(z|x, y) (with M2's most probable class where y is not given) and M2's
    error."""
    from .labelled import checked_labels, classification_error, label_log_likelihood

    start = time.perf_counter()
    x = x.to(next(model.parameters()).device)
    if y is not None:
        y = checked_labels(y, len(x)).to(x.device)
    elbo = average_bound(model, x, seed + SEED_OFFSETS[split][1], y=y)
    ll = label_log_likelihood(model, x, y, importance_samples, seed + 5, batch_size)
    error = None
    if model.classifier is not None and y is not None:
        error = classification_error(model, x, y)
    use = None
    if len(x) > 1:
        seen = y if y is not None else torch.cat(
            [model.classify(x[i:i + 2000]).logits.argmax(-1) for i in range(0, len(x), 2000)])
        use = latent_use(model.given(seen), x, batch_size=len(x))
    return Evaluation(split, len(x), elbo, float(ll.double().mean()), importance_samples,
                      time.perf_counter() - start, "importance", ll.cpu().numpy(),
                      use.active_units if use else None, use.kl_per_dimension if use else None,
                      error=error, given_label=model.classifier is None)
