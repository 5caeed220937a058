"""One training step per algorithm: what Algorithm 1's loop calls with each minibatch.

Each step takes the minibatch x [M, D] (already binarized where the run binarizes), the
indices of its points in the training set [M] and the run's noise generator, draws whatever
noise its algorithm needs from that generator, and leaves the parameters updated. The loop in
`trainer` is the same for every algorithm and does not know which one runs. A step whose
objective is not finite raises `NonFinite` before the optimizer moves anything; the loop turns
that into an error that names the step.

- `AevbStep`: minibatch SGVB on an objective f(model, x, eps) -> [M] nats (section 2.3,
  Algorithm 1), eagerly or compiled by torch.compile (`aevb.engine`);
- `NativeAevbStep`: the same for estimator B with Adagrad, made by the native backend
  (`aevb.native`) where it serves the model;
- `FullVbStep`: SGVB on the appendix F bound, with a posterior over theta (`aevb.full_vb`);
- `WakeSleepStep`: the wake phase on the data and the sleep phase on fantasies;
- `McemStep`: Monte Carlo EM (appendix E): a move of each point's chain, then updates of theta.
"""
from __future__ import annotations

import torch

from . import baselines, distributed, engine
from .objectives import (ESTIMATORS, elbo_beta, sleep_objective, wake_objective,
                         warmup_beta)


class NonFinite(Exception):
    """The objective of a step was NaN or infinite; nothing was updated."""

    def __init__(self, value: float):
        super().__init__(value)
        self.value = value


class _ObjectiveModule(torch.nn.Module):
    """The objective as a module, only so DistributedDataParallel can hook its forward pass.

    `extra` goes to the objective after (model, x, eps): the KL weight beta (a 0-d tensor) of
    `objectives.elbo_beta`, or the parameter noise zeta of `full_vb.full_vb_bound`. For
    wake-sleep, `dream` = (z, x) fantasies add the sleep phase's objective."""

    def __init__(self, model, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, eps, *extra, dream=None):
        value = self.objective(self.model, x, eps, *extra)  # [N]
        if dream is not None:
            value = value + sleep_objective(self.model, *dream)
        return value


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, update=None) -> None:
    """One gradient step on `loss` (a scalar) by `update` (default optimizer.step), refused
    before it moves anything if the loss is not finite."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if not torch.isfinite(loss):
        raise NonFinite(loss.item())
    (update or optimizer.step)()


class AevbStep:
    """Minibatch SGVB (Algorithm 1): eps ~ N(0, I) of shape [L, M, J], then a step on minus the
    mean of `objective` (eq. 8 divided by N: step sizes do not scale with the dataset size).
    With `compiled`, the loss (forward and backward graphs) and the optimizer's update run
    as torch.compile made them, for minibatches of `batch_size`. With `kl_weight`, a function
    that gives the KL weight beta before each step (a warm-up), the objective is called as
    objective(model, x, eps, beta) (`objectives.elbo_beta`)."""

    def __init__(self, model, optimizer, objective, mc_samples: int, compiled: bool = False,
                 batch_size: int = 0, kl_weight=None):
        self.model, self.optimizer, self.mc_samples = model, optimizer, mc_samples
        self.kl_weight = kl_weight
        self.loss = distributed.wrap(_ObjectiveModule(model, objective))
        self.forward, self.update = self._mean_loss, optimizer.step
        if compiled:
            self.forward = engine.compile_loss(self._mean_loss, batch_size)
            self.update = engine.compile_update(optimizer)

    def _mean_loss(self, x: torch.Tensor, eps: torch.Tensor, *extra) -> torch.Tensor:
        return -self.loss(x, eps, *extra).mean()

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = torch.randn(self.mc_samples, len(idx), self.model.config.latent_dim,
                          generator=noise, device=x.device)
        self.take(x, eps)

    def take(self, x: torch.Tensor, eps: torch.Tensor, *extra) -> None:
        """The step with this noise eps [L, M, J] (and `extra`, the objective's own inputs)."""
        if self.kl_weight is not None:
            # a tensor, so that a compiled loss does not recompile for every new value
            extra = (torch.tensor(float(self.kl_weight()), device=x.device),)
        descend(self.optimizer, self.forward(x, eps, *extra), self.update)


class FullVbStep(AevbStep):
    """Full variational Bayes over theta (appendix F, `aevb.full_vb`): one draw
    theta = mu + sigma * zeta for the minibatch, eps [L, M, J] for its points, then a step on
    minus the mean of `full_vb.full_vb_bound` (the appendix's bound divided by N)."""

    def __init__(self, model, optimizer, mc_samples: int, n_data: int, compiled: bool = False,
                 batch_size: int = 0):
        from .full_vb import full_vb_bound

        def objective(model, x, eps, zeta):
            return full_vb_bound(model, x, eps, zeta, n_data)

        super().__init__(model, optimizer, objective, mc_samples, compiled, batch_size)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = torch.randn(self.mc_samples, len(idx), self.model.config.latent_dim,
                          generator=noise, device=x.device)
        self.take(x, eps, self.model.theta_posterior.noise(noise))


class NativeAevbStep:
    """`AevbStep` for estimator B with Adagrad, made in one call of the native backend
    (`aevb.native.step.Step`: bound, gradient and update together). A minibatch the native
    step does not take (another dtype or layout) goes through `fallback`, the eager step."""

    def __init__(self, model, optimizer, mc_samples: int):
        from .native.step import Step

        self.model, self.mc_samples = model, mc_samples
        self.native = Step(model, optimizer)
        self.fallback = AevbStep(model, optimizer, ESTIMATORS["B"], mc_samples)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = torch.randn(self.mc_samples, len(idx), self.model.config.latent_dim,
                          generator=noise, device=x.device)
        if self.native.usable(x, eps):
            try:
                bound = self.native(x, eps)  # the whole step, update included
            except ValueError:  # tensors it does not take: refused before any work
                pass
            else:
                if bound is None:
                    raise NonFinite(float("nan"))
                return
        self.fallback.take(x, eps)


class WakeSleepStep:
    """Wake-sleep (Hinton et al. 1995), the paper's baseline: the wake objective on the data
    (z ~ q_phi(z|x)) plus the sleep objective on fantasies (z, x) from the generative model."""

    def __init__(self, model, optimizer, mc_samples: int):
        self.model, self.optimizer, self.mc_samples = model, optimizer, mc_samples
        self.loss = distributed.wrap(_ObjectiveModule(model, wake_objective))

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        eps = torch.randn(self.mc_samples, len(idx), self.model.config.latent_dim,
                          generator=noise, device=x.device)
        dream = self.model.dream(len(idx), noise)
        descend(self.optimizer, -self.loss(x, eps, dream=dream).mean())


class McemStep:
    """Monte Carlo EM (appendix E): each point's persistent z moves by one HMC transition
    (`leapfrog` steps, step size tuned to `accept`), then `updates` steps on log p_theta(x, z)."""

    def __init__(self, model, optimizer, chains: baselines.Chains, leapfrog: int,
                 accept: float, updates: int):
        self.model, self.optimizer, self.chains = model, optimizer, chains
        self.leapfrog, self.accept, self.updates = leapfrog, accept, updates

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, noise: torch.Generator) -> None:
        z, _ = baselines.e_step(self.model, x, self.chains, idx, self.leapfrog, self.accept,
                                noise)
        for _ in range(self.updates):
            descend(self.optimizer, -baselines.complete_log_likelihood(self.model, x, z).mean())


def make_step(config, model, optimizer, chains: baselines.Chains | None,
              engine_name: str = "eager", samples_done=lambda: 0, n_data: int = 0):
    """The step of `config.algorithm` for this model and optimizer, run by `engine_name`
    (native | compiled | eager, from `engine.choose`; only SGVB's step has the first two).
    `samples_done()` gives the training samples so far (for a KL warm-up); `n_data` is the
    training set's size N (full-vb spreads KL(q(theta) || p(theta)) over its points)."""
    if config.algorithm == "mcem":
        return McemStep(model, optimizer, chains, config.mcem_leapfrog, config.mcem_accept,
                        config.mcem_updates)
    if config.algorithm == "wake-sleep":
        return WakeSleepStep(model, optimizer, config.mc_samples)
    if config.algorithm == "full-vb":
        return FullVbStep(model, optimizer, config.mc_samples, n_data,
                          compiled=engine_name == "compiled", batch_size=config.batch_size)
    if engine_name == "native":
        return NativeAevbStep(model, optimizer, config.mc_samples)
    if config.kl_weight != 1 or config.kl_warmup:
        def beta():
            return warmup_beta(samples_done(), config.kl_warmup, config.kl_weight)

        return AevbStep(model, optimizer, elbo_beta, config.mc_samples,
                        compiled=engine_name == "compiled", batch_size=config.batch_size,
                        kl_weight=beta)
    return AevbStep(model, optimizer, ESTIMATORS[config.estimator], config.mc_samples,
                    compiled=engine_name == "compiled", batch_size=config.batch_size)
