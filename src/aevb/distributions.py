"""The probability maths of AEVB, free of parameters and networks.

Everything here is a pure function of tensors. Shapes use N for data points, D for data
dimensions, J for latent dimensions (the paper's N_z) and L or K for samples per data point.
All log-densities are in nats.
"""
from __future__ import annotations

import math

import torch
from torch.distributions import Independent, Normal


def diagonal_gaussian(loc: torch.Tensor, log_var: torch.Tensor) -> Independent:
    """N(loc, diag(exp(log_var))) with the last axis as the event: batch [...], event [J].

    Used for the recognition model q_phi(z|x) (paper section 3, appendix C.2).
    """
    return Independent(Normal(loc, torch.exp(0.5 * log_var), validate_args=False), 1)


def standard_normal(latent_dim: int, *, device=None, dtype=torch.float32) -> Independent:
    """The prior p_theta(z) = N(0, I) over J = latent_dim dimensions (event [J])."""
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)


def q_sample(q: Independent, eps: torch.Tensor) -> torch.Tensor:
    """The reparameterization trick (section 2.4): z = mu + sigma * eps with eps ~ N(0, I).

    q has batch [N] and event [J]; eps is [L, N, J]; returns z [L, N, J], differentiable in
    mu and sigma, so the gradient of an expectation over q becomes an expectation over eps.
    """
    return q.base_dist.loc + q.base_dist.scale * eps


def kl_to_standard_normal(q: Independent) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) in closed form (appendix B), in nats, shape [N].

    For q = N(mu, diag(sigma^2)):  -KL = 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    """
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    var = sigma * sigma
    return 0.5 * (mu * mu + var - 1.0 - torch.log(var)).sum(-1)


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(a_k) along `dim`, computed stably with logsumexp."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])
