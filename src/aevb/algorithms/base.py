"""The interface every training algorithm implements, and what their steps share.

An algorithm is one object (registered in `aevb.algorithms`) that tells the loop, the
checkpoint, the report and the CLI everything that differs between algorithms:

    make_step(config, model, optimizer, state, engine_name, samples_done, n_data) -> Step
        the callable Algorithm 1's loop hands each minibatch: step(x [M, D], idx [M], noise)
        draws its own noise from the generator `noise` and leaves the parameters updated, or
        raises `NonFinite` before anything moved;
    start(config, n_train, device) -> state | None
        state it keeps between steps beyond the parameters (MCEM's chains);
    state_tensors(state) -> {name: Tensor}, restore(tensors, run_dir, where, ...) -> state
        that state in a checkpoint, and back (checked before use);
    bound(model, x, seed, n_data, y) -> float | None
        the bound an evaluation records (nats per data point; None: it has none), y the
        rows' labels for a model with a label;
    trains_encoder, compiles, why_not_native(config), weight_decay(config, n_train),
    model_options(config), check(config): what it trains, which engines serve it, how the
        weight prior enters, what it adds to the model, which settings it refuses.

Subclasses override what differs from the defaults below (SGVB on a point estimate of theta).
"""
from __future__ import annotations

from typing import Callable, ClassVar

import torch


class NonFinite(Exception):
    """The objective of a step was NaN or infinite; nothing was updated."""

    def __init__(self, value: float):
        super().__init__(value)
        self.value = value


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, update=None) -> None:
    """One gradient step on `loss` (a scalar) by `update` (default optimizer.step), refused
    before it moves anything if the loss is not finite."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if not torch.isfinite(loss):
        raise NonFinite(loss.item())
    (update or optimizer.step)()


def draw_eps(model, n: int, mc_samples: int, noise: torch.Generator,
             device) -> torch.Tensor:
    """eps ~ N(0, I) of shape [L, n, J] for the reparameterization of n points."""
    return torch.randn(mc_samples, n, model.config.latent_dim, generator=noise, device=device)


class ObjectiveModule(torch.nn.Module):
    """An objective f(model, x, *inputs) -> [N] as a module, only so that
    DistributedDataParallel can hook its forward pass (`aevb.compute.distributed.wrap`)."""

    def __init__(self, model, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, *inputs):
        return self.objective(self.model, x, *inputs)  # [N]


Step = Callable[[torch.Tensor, torch.Tensor, torch.Generator], None]


class Algorithm:
    """Defaults of the interface: SGVB-like training of encoder and decoder with theta a
    point estimate under the weight prior N(0, s^2 I) (MAP)."""

    name: ClassVar[str]  # in --algorithm and config.json
    label: ClassVar[str]  # in figures and tables
    trains_encoder: ClassVar[bool] = True  # q_phi(z|x) is learned: a bound, latent use, ...
    compiles: ClassVar[bool] = True  # torch.compile may run its step (else eager only)

    def check(self, config) -> str | None:
        """Why `config` (a TrainConfig) asks for something this algorithm does not do, or
        None."""
        if config.kl_weight != 1 or config.kl_warmup:
            return "kl-weight and kl-warmup apply to estimator B of the aevb algorithm"
        if config.conditional:
            return "a label (conditional, M2) is trained by the aevb algorithm only"
        return None

    def model_options(self, config) -> dict:
        """ModelConfig fields this algorithm sets (beyond the networks)."""
        return {}

    def weight_decay(self, config, n_train: int) -> float:
        """The L2 decay the weight prior amounts to. N(0, s^2 I) on the weights adds
        log p(theta) / N to the per-data-point bound (eq. 8 divided by N), whose gradient
        -theta / (s^2 N) is exactly an L2 weight decay."""
        s = config.weight_prior_std
        return 0.0 if s is None else 1.0 / (s**2 * n_train)

    def why_not_native(self, config) -> str | None:
        """Why the native step cannot serve this algorithm with `config`, or None where it
        might (the model, device and process count are checked after)."""
        return "it serves the SGVB step only"

    def start(self, config, n_train: int, device):
        """The algorithm's own state at the start of a run (None: it keeps none)."""
        return None

    def state_tensors(self, state) -> dict[str, torch.Tensor]:
        """`state` as named tensors for the checkpoint."""
        return {}

    def restore(self, tensors: dict, run_dir, where: str, n_train: int, config, device):
        """The state from a checkpoint's tensors (as `state_tensors` wrote them), checked."""
        return None

    def make_step(self, config, model, optimizer, state, engine_name: str = "eager",
                  samples_done: Callable[[], int] = lambda: 0, n_data: int = 0,
                  labels=None) -> Step:
        """The step run by `engine_name` (native | compiled | eager, from `aevb.compute.engine`).
        `samples_done()` gives the training samples so far (for a KL warm-up); `n_data` is
        the training set's size N; `labels` the run's `data.labels.Observed` (None: no
        label)."""
        raise NotImplementedError

    def bound(self, model, x: torch.Tensor, seed: int, n_data: int,
              y: torch.Tensor | None = None) -> float | None:
        """The mean bound on the rows of x with noise from `seed`, nats per data point; for a
        model with a label, y [N] are the rows' labels (`evaluation.labelled.label_bound`)."""
        from ..evaluation.evaluate import average_bound

        return average_bound(model, x, seed, y=y)
