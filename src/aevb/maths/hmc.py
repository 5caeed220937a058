"""Hamiltonian Monte Carlo for batches of independent chains (used by appendices D and E).

Each chain c has a position z[c] in R^J and a target log-density log_prob(z)[c] (an
unnormalised log p(z|x) for one data point, say). All chains move together, each with its own
step size, so one call samples the posteriors of a whole minibatch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

LogProb = Callable[[torch.Tensor], torch.Tensor]  # [C, J] -> [C]


def _value_and_grad(log_prob: LogProb, z: torch.Tensor):
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = log_prob(z)
        (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad


def leapfrog(log_prob: LogProb, z, momentum, step, n_steps, grad=None):
    """n_steps leapfrog steps of size step [C, 1]: a volume-preserving, reversible map.

    grad: the gradient of log_prob at z when the caller has it. Returns the new position and
    momentum, and log_prob at the new position [C] (the last gradient evaluation gives it free).
    """
    if grad is None:
        _, grad = _value_and_grad(log_prob, z)
    momentum = momentum + 0.5 * step * grad
    for i in range(n_steps):
        z = z + step * momentum
        value, grad = _value_and_grad(log_prob, z)
        if i < n_steps - 1:
            momentum = momentum + step * grad
    momentum = momentum + 0.5 * step * grad
    return z, momentum, value


def hmc_step(log_prob: LogProb, z: torch.Tensor, step: torch.Tensor, n_leapfrog: int,
             generator: torch.Generator | None = None):
    """One HMC transition per chain; returns (new z [C, J], acceptance probability [C])."""
    momentum = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    current, grad = _value_and_grad(log_prob, z)
    proposal, new_momentum, proposed = leapfrog(log_prob, z, momentum, step[:, None],
                                                n_leapfrog, grad)
    # Metropolis correction with the Hamiltonian H = -log p(z) + |m|^2 / 2.
    log_ratio = (proposed - 0.5 * (new_momentum**2).sum(-1)) - \
        (current - 0.5 * (momentum**2).sum(-1))
    log_ratio = torch.nan_to_num(log_ratio, nan=-float("inf"))
    accept_prob = torch.exp(torch.clamp(log_ratio, max=0.0))
    u = torch.rand(accept_prob.shape, generator=generator, dtype=z.dtype, device=z.device)
    accepted = u < accept_prob
    return torch.where(accepted[:, None], proposal, z).detach(), accept_prob


@dataclass(frozen=True)
class Samples:
    z: torch.Tensor  # [S, C, J] draws after burn-in
    step_size: torch.Tensor  # [C] adapted step sizes
    acceptance: torch.Tensor  # [C] mean acceptance probability after burn-in


def sample(log_prob: LogProb, z0: torch.Tensor, n_samples: int, n_leapfrog: int = 4,
           burn_in: int = 100, step_size: float | torch.Tensor = 0.1,
           target_accept: float = 0.9, generator: torch.Generator | None = None) -> Samples:
    """Burn in while adapting each chain's step size toward `target_accept`, then draw.

    Adaptation is a Robbins-Monro update of log step: += (accept - target) / sqrt(t + 1);
    it stops after burn-in, so the draws come from a fixed, valid Markov chain.
    """
    z = z0.detach().clone()
    log_step = torch.as_tensor(step_size, dtype=z.dtype, device=z.device) \
        .expand(z.shape[0]).clone().log()
    for t in range(burn_in):
        z, accept = hmc_step(log_prob, z, log_step.exp(), n_leapfrog, generator)
        log_step = log_step + (accept - target_accept) / (t + 1) ** 0.5
    draws, rates = [], []
    for _ in range(n_samples):
        z, accept = hmc_step(log_prob, z, log_step.exp(), n_leapfrog, generator)
        draws.append(z)
        rates.append(accept)
    return Samples(torch.stack(draws), log_step.exp(), torch.stack(rates).mean(0))
