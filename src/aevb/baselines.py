"""Monte Carlo EM, the paper's baseline without a recognition model (appendix E).

Every training point x^(i) keeps its own latent sample z^(i) between visits (a persistent
Markov chain on p_theta(z|x^(i))). A visit of a minibatch is
  E-step: one HMC transition of each point's chain (10 leapfrog steps, the step size tuned so
          that the average acceptance rate is 90%), started from the point's previous z;
  M-step: 5 Adagrad updates of theta on log p_theta(x, z) with those z held fixed.
The encoder of the VAE is not used (its parameters never change). Wake-sleep, the other
baseline, is two objectives in `aevb.objectives` that train the same networks as AEVB.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import hmc

# Gain of the step-size adaptation per minibatch, on log(step): large enough to follow the
# posterior as theta changes, small enough that one minibatch's noise barely moves it.
ADAPT_GAIN = 0.05


def complete_log_likelihood(model, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p_theta(x, z) = log p(z) + log p_theta(x|z) for x [N, D], z [..., N, J]; [..., N] nats.

    The M-step objective of EM, and up to the constant log p_theta(x) the log posterior
    density of z that HMC samples in the E-step.
    """
    return model.prior().log_prob(z) + model.decode(z).log_prob(x)


@dataclass
class Chains:
    """The persistent E-step state: one z per training point and one shared step size."""

    z: torch.Tensor  # [N_train, J]
    log_step: torch.Tensor  # [] log of the leapfrog step size

    @classmethod
    def start(cls, n: int, latent_dim: int, generator: torch.Generator,
              device=None, step_size: float = 0.1) -> "Chains":
        """Chains started at draws from the prior p(z) = N(0, I)."""
        z = torch.randn(n, latent_dim, generator=generator, device=device)
        return cls(z, torch.tensor(step_size, device=device).log())


def e_step(model, x: torch.Tensor, z: torch.Tensor, chains: Chains, n_leapfrog: int,
           target_accept: float, generator: torch.Generator):
    """One HMC transition per row of x [N, D] from z [N, J]; returns (z [N, J], accept [N]).

    Also moves chains.log_step toward `target_accept` by the minibatch's mean acceptance.
    """
    def log_joint(zz):  # [N, J] -> [N]
        return complete_log_likelihood(model, x, zz)

    step = chains.log_step.exp().expand(len(x))
    z, accept = hmc.hmc_step(log_joint, z, step, n_leapfrog, generator)
    chains.log_step = chains.log_step + ADAPT_GAIN * (accept.mean() - target_accept)
    return z, accept
