"""The probability maths of AEVB, free of parameters and networks.

Everything here is a pure function of tensors. Shapes use N for data points, D for data
dimensions, J for latent dimensions (the paper's N_z) and L or K for samples per data point.
All log-densities are in nats.
"""
from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, Independent, Normal, constraints
from torch.distributions.utils import lazy_property


class DiagonalGaussian(Independent):
    """N(loc, diag(scale^2)) with the last axis as the event, as torch's Independent(Normal),
    plus what aevb asks of every distribution its networks return: `draw(generator)` and
    `outputs()` (the named parameters an exported program gives)."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        super().__init__(Normal(loc, scale, validate_args=False), 1)

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw loc + scale * eps from `generator`, [..., D]."""
        p = self.base_dist
        return p.loc + p.scale * torch.randn(p.loc.shape, generator=generator,
                                             device=p.loc.device, dtype=p.loc.dtype)

    def outputs(self) -> dict[str, torch.Tensor]:
        return {"mean": self.base_dist.loc, "log_var": 2.0 * torch.log(self.base_dist.scale)}


def diagonal_gaussian(loc: torch.Tensor, log_var: torch.Tensor) -> DiagonalGaussian:
    """N(loc, diag(exp(log_var))) with the last axis as the event: batch [...], event [J].

    Used for the recognition model q_phi(z|x) (paper section 3, appendix C.2).
    """
    return DiagonalGaussian(loc, torch.exp(0.5 * log_var))


class BernoulliLogits(Distribution):
    """prod_d Bernoulli(x_d; sigmoid(l_d)) for logits l [..., D]: batch [...], event [D]. The
    same distribution and log_prob (nats) as Independent(Bernoulli(logits=l), 1)."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, logits: torch.Tensor | None = None, batch_shape=None, event_shape=None):
        if logits is not None:
            self.logits = logits
            batch_shape, event_shape = logits.shape[:-1], logits.shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    @property
    def probs(self) -> torch.Tensor:
        return self.mean

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return torch.bernoulli(self.mean.expand(self._extended_shape(sample_shape)))

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw from `generator`, [..., D] (the bits of `binarize` of the mean)."""
        return binarize(self.mean, generator)

    def outputs(self) -> dict[str, torch.Tensor]:
        return {"logits": self.logits}

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., N, D] against batch [..., N]; returns [..., N] nats."""
        logits, x = torch.broadcast_tensors(self.logits, x)
        return -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x, reduction="none").sum(-1)


class StandardNormal(Independent):
    """N(0, I) with the last axis as the event, and the KL of a diagonal Gaussian to it in
    closed form (`kl_from`), which `kl_to_prior` uses."""

    def __init__(self, zeros: torch.Tensor):
        super().__init__(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)

    def kl_from(self, q: Independent) -> torch.Tensor:
        """KL(q || N(0, I)) for a diagonal Gaussian q, [N] nats (appendix B)."""
        return kl_to_standard_normal(q)


def standard_normal(latent_dim: int, *, device=None, dtype=torch.float32) -> StandardNormal:
    """The prior p_theta(z) = N(0, I) over J = latent_dim dimensions (event [J])."""
    return StandardNormal(torch.zeros(latent_dim, device=device, dtype=dtype))


def q_sample(q: Independent, eps: torch.Tensor) -> torch.Tensor:
    """The reparameterization trick (section 2.4): z = mu + sigma * eps with eps ~ N(0, I).

    q has batch [N] and event [J]; eps is [L, N, J]; returns z [L, N, J], differentiable in
    mu and sigma, so the gradient of an expectation over q becomes an expectation over eps.
    A posterior that transforms the Gaussian further (a flow) makes its own draw from eps
    (`rsample_from`), and keeps their density for its log_prob.
    """
    transform = getattr(q, "rsample_from", None)
    if transform is not None:
        return transform(eps)
    return q.base_dist.loc + q.base_dist.scale * eps


def _twice_kl_terms(q: Independent, dtype=None) -> torch.Tensor:
    """mu_j^2 + sigma_j^2 - 1 - log sigma_j^2 per dimension, [N, J] (in `dtype` if given)."""
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    if dtype is not None:
        mu, sigma = mu.to(dtype), sigma.to(dtype)
    var = sigma * sigma
    return mu * mu + var - 1.0 - torch.log(var)


def kl_to_standard_normal(q: Independent) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) in closed form (appendix B), in nats, shape [N].

    For q = N(mu, diag(sigma^2)):  -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    """
    return 0.5 * _twice_kl_terms(q).sum(-1)


def kl_per_dimension(q: Independent, dtype=None) -> torch.Tensor:
    """The terms of `kl_to_standard_normal`, KL(q(z_j|x) || N(0, 1)) per dimension: [N, J]
    nats (their sum over j is the KL), computed in `dtype` if given."""
    return 0.5 * _twice_kl_terms(q, dtype)


def kl_to_prior(q: Independent, prior, z: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || p(z)), [N] nats: in closed form where the prior has one (`kl_from`, as
    N(0, I) has), else the Monte Carlo estimate (1/L) sum_l log q(z_l|x) - log p(z_l) on the
    draws z [L, N, J] of q (unbiased; estimator B then equals estimator A)."""
    closed = getattr(prior, "kl_from", None)
    if closed is not None and is_diagonal_gaussian(q):
        return closed(q)
    return (q.log_prob(z) - prior.log_prob(z)).mean(0)


def is_diagonal_gaussian(q) -> bool:
    """Whether q is N(mu, diag(sigma^2)) as Independent(Normal) (a flow posterior is not)."""
    return isinstance(q, Independent) and isinstance(q.base_dist, Normal)


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(a_k) along `dim`, computed stably with logsumexp."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


class AffineBernoulli(BernoulliLogits):
    """prod_d Bernoulli(x_d; sigmoid(l_d)) with logits l = h W^T + b: batch [...], event [D].

    The same distribution as Independent(Bernoulli(logits=l), 1) for the Bernoulli decoder
    (appendix C.1), whose last layer is l = W h + b. Knowing h, W and b lets log_prob use

        log p(x|z) = sum_d [x_d l_d - softplus(l_d)] = h . (W^T x) + b . x - sum_d softplus(l_d)

    for many codes z per data point (importance sampling, h [K, N, H]): the x-dependent part
    becomes a product over the H hidden units, computed once per x, instead of over D pixels
    for each of the K samples. Nats; x must be binary.
    """

    def __init__(self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        self.h, self.weight, self.bias = h, weight, bias  # [..., H], [D, H], [D]
        super().__init__(None, h.shape[:-1], weight.shape[:1])

    @lazy_property
    def logits(self) -> torch.Tensor:  # [..., D]
        return torch.nn.functional.linear(self.h, self.weight, self.bias)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., N, D] against batch [..., N]; returns [..., N] nats."""
        return self.data_terms(x) - torch.nn.functional.softplus(self.logits).sum(-1)

    def data_terms(self, x: torch.Tensor) -> torch.Tensor:
        """sum_d x_d l_d, the part of log_prob that depends on x: [..., N] nats."""
        if self.h.dim() > x.dim() and self.h[..., 0].numel() >= 4 * x[..., 0].numel():
            # Several samples per data point: the x-terms through the hidden layer.
            return (self.h * (x @ self.weight)).sum(-1) + x @ self.bias
        return (x * self.logits).sum(-1)


def binarize(probs: torch.Tensor, generator: torch.Generator | None = None,
             rows: torch.Tensor | None = None) -> torch.Tensor:
    """One Bernoulli draw per element, 1 with probability `probs` (or `probs[rows]` for a
    LongTensor of row indices), as a float tensor.

    Compares uniform draws with probs: on CPU the same bits as torch.bernoulli(probs,
    generator=generator), in about half the time (docs/performance.md).
    `aevb.native.binarize` draws the same bits faster where the native backend serves.
    """
    if rows is not None:
        probs = probs[rows]
    u = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
    return (u < probs).to(probs.dtype)


def draw_around(mean: torch.Tensor, std: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw of N(mean, diag(std^2)) per row: mean + std * eps, eps ~ N(0, I) from
    `generator`; mean and std [N, D] -> [N, D]."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * eps
