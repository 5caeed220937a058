"""Full variational Bayes (appendix F): SGVB on the appendix F bound, with a Gaussian posterior
q_phi(theta) over the decoder's parameters (the maths: `aevb.full_vb`)."""
from __future__ import annotations

import torch

from .base import Algorithm, draw_eps
from .sgvb import AevbStep


class FullVbStep(AevbStep):
    """One draw theta = mu + sigma * zeta for the minibatch, eps [L, M, J] for its points,
    then a step on minus the mean of `full_vb.full_vb_bound` (the appendix's bound divided
    by N)."""

    def __init__(self, model, optimizer, mc_samples: int, n_data: int, compiled: bool = False,
                 batch_size: int = 0):
        from ..full_vb import full_vb_bound

        def objective(model, x, eps, zeta):
            return full_vb_bound(model, x, eps, zeta, n_data)

        super().__init__(model, optimizer, objective, mc_samples, compiled, batch_size)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = draw_eps(self.model, len(idx), self.mc_samples, noise, x.device)
        self.take(x, eps, self.model.theta_posterior.noise(noise))


class FullVB(Algorithm):
    name, label = "full-vb", "full VB"

    def check(self, config):
        if config.weight_prior_std is None or config.estimator != "B":
            return "full-vb needs the prior (weight-prior-std, its alpha) and estimator B"
        return super().check(config)

    def model_options(self, config) -> dict:
        return {"theta_prior_std": config.weight_prior_std}

    def weight_decay(self, config, n_train):
        return 0.0  # the prior enters the bound as KL(q(theta) || p(theta)) instead

    def why_not_native(self, config):
        return "it serves a point estimate of theta, not full-vb's posterior over it"

    def make_step(self, config, model, optimizer, state, engine_name="eager",
                  samples_done=lambda: 0, n_data=0, labels=None):
        return FullVbStep(model, optimizer, config.mc_samples, n_data,
                          compiled=engine_name == "compiled", batch_size=config.batch_size)

    def bound(self, model, x, seed, n_data, y=None):
        from ..full_vb import average_full_vb_bound

        return average_full_vb_bound(model, x, n_data, seed)
