"""Monte Carlo EM, the paper's baseline without a recognition model (appendix E).

Every training point x^(i) keeps its own latent sample z^(i) between visits (a persistent
Markov chain on p_theta(z|x^(i))). A visit of a minibatch is
  E-step: one HMC transition of each point's chain (10 leapfrog steps, the step size tuned so
          that the average acceptance rate is 90%), started from the point's previous z;
  M-step: 5 Adagrad updates of theta on log p_theta(x, z) with those z held fixed.
The encoder of the VAE is not used (its parameters never change). Settings:
`settings.McemConfig` (`--mcem-leapfrog`, `--mcem-updates`, `--mcem-accept`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import AevbError
from ..maths import hmc
from ..maths.objectives import complete_log_likelihood
from .base import Algorithm, descend

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


class McemStep:
    """Each point's persistent z moves by one HMC transition (`leapfrog` steps, step size
    tuned to `accept`), then `updates` steps on log p_theta(x, z)."""

    def __init__(self, model, optimizer, chains: Chains, leapfrog: int, accept: float,
                 updates: int):
        self.model, self.optimizer, self.chains = model, optimizer, chains
        self.leapfrog, self.accept, self.updates = leapfrog, accept, updates

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        z, _ = e_step(self.model, x, self.chains, idx, self.leapfrog, self.accept, noise)
        for _ in range(self.updates):
            descend(self.optimizer, -complete_log_likelihood(self.model, x, z).mean())


class MCEM(Algorithm):
    name, label = "mcem", "MCEM"
    trains_encoder = False  # q_phi(z|x) is never trained: no bound to report
    compiles = False

    def start(self, config, n_train, device) -> Chains:
        from ..compute import distributed

        if distributed.world_size() > 1:
            raise AevbError("mcem keeps one chain per training point in one process; "
                            "run it without torchrun")
        return Chains.start(n_train, config.latent_dim,
                            torch.Generator(device=device).manual_seed(config.seed + 2), device)

    def state_tensors(self, state: Chains) -> dict:
        return {"mcem.z": state.z, "mcem.log_step": state.log_step}

    def restore(self, tensors, run_dir, where, n_train, config, device) -> Chains:
        try:
            z, log_step = tensors["mcem.z"], tensors["mcem.log_step"]
        except KeyError:
            raise AevbError(f"{run_dir}: the checkpoint lacks MCEM's chains") from None
        _check_chains(where, z, log_step, n_train, config.latent_dim)
        return Chains(z.to(device), log_step.to(device))

    def make_step(self, config, model, optimizer, state, engine_name="eager",
                  samples_done=lambda: 0, n_data=0, labels=None):
        m = config.mcem
        return McemStep(model, optimizer, state, m.leapfrog, m.accept, m.updates)

    def bound(self, model, x, seed, n_data, y=None):
        return None


def _check_chains(where: str, z: torch.Tensor, log_step: torch.Tensor, n: int, latent: int) -> None:
    """MCEM's chains: one z per training point and one step size."""
    if z.shape != (n, latent) or not z.dtype.is_floating_point or log_step.numel() != 1 \
            or not bool(torch.isfinite(z).all()):
        raise AevbError(f"{where}: MCEM's chains do not fit {n} points of {latent} dimensions")
