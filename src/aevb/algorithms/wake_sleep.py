"""Wake-sleep (Hinton et al. 1995), the paper's baseline with a recognition model: the wake
objective on the data (z ~ q_phi(z|x)) plus the sleep objective on fantasies (z, x) from the
generative model. Neither is a bound on log p(x); the bound is still what evaluations report."""
from __future__ import annotations

import torch

from ..compute import distributed
from ..maths.objectives import sleep_objective, wake_objective
from .base import Algorithm, ObjectiveModule, descend, draw_eps


def wake_sleep_objective(model, x: torch.Tensor, eps: torch.Tensor, z_dream: torch.Tensor,
                         x_dream: torch.Tensor) -> torch.Tensor:
    """The wake objective on x (eps [L, N, J]) plus the sleep objective on fantasies
    (z_dream [N, J], x_dream [N, D]); [N] nats."""
    return wake_objective(model, x, eps) + sleep_objective(model, z_dream, x_dream)


class WakeSleepStep:
    """One step on minus the mean of `wake_sleep_objective`, fantasies drawn per step."""

    def __init__(self, model, optimizer, mc_samples: int):
        self.model, self.optimizer, self.mc_samples = model, optimizer, mc_samples
        self.loss = distributed.wrap(ObjectiveModule(model, wake_sleep_objective))

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = draw_eps(self.model, len(idx), self.mc_samples, noise, x.device)
        dream = self.model.dream(len(idx), noise)
        descend(self.optimizer, -self.loss(x, eps, *dream).mean())


class WakeSleep(Algorithm):
    name, label = "wake-sleep", "Wake-Sleep"
    compiles = False

    def make_step(self, config, model, optimizer, state, engine_name="eager",
                  samples_done=lambda: 0, n_data=0, labels=None):
        return WakeSleepStep(model, optimizer, config.mc_samples)
