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
from .objectives import complete_log_likelihood  # the M-step objective, log p_theta(x, z)

# Gain of the step-size adaptation per minibatch, on log(step): large enough to follow the
# posterior as theta changes, small enough that one minibatch's noise barely moves it.
ADAPT_GAIN = 0.05


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


def e_step(model, x: torch.Tensor, chains: Chains, idx, n_leapfrog: int,
           target_accept: float, generator: torch.Generator):
    """One HMC transition of the chains chains.z[idx] of the rows of x [N, D], in place;
    returns their new z [N, J] and acceptance probabilities [N].

    Also moves chains.log_step toward `target_accept` by the minibatch's mean acceptance.
    """
    def log_joint(z):  # [N, J] -> [N]
        return complete_log_likelihood(model, x, z)

    step = chains.log_step.exp().expand(len(x))
    z, accept = hmc.hmc_step(log_joint, chains.z[idx], step, n_leapfrog, generator)
    chains.z[idx] = z
    chains.log_step = chains.log_step + ADAPT_GAIN * (accept.mean() - target_accept)
    return z, accept
