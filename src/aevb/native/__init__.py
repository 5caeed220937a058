"""The optional native backend: a hand-written C training step for the paper's models.

It is the backend `aevb.compute.engine` registers as "native"; its module-level functions
below are that module's `Backend` protocol, and nothing outside this package imports more:

- `unavailable_reason(model, optimizer_name, device, dtype)`: None where the step serves
  this model and optimizer (tanh MLPs, Gaussian q_phi(z|x), Bernoulli or Gaussian
  p_theta(x|z), the N(0, I) prior, Adagrad, float32 on a CPU, the C library built), else why;
- `make_step(model, optimizer)`: called with (x, eps), the whole SGVB step of estimator B
  (bound, gradient, Adagrad update); the bound per data point [N] in nats, or None (nothing
  changed) where the bound is not finite;
- `adagrad(params, lr, weight_decay)`: torch.optim.Adagrad with the same update in C;
- `log_weights_for(model, x)` and `binarizer()`: importance sampling's log-weights and the
  binarization's draws, the same values as the PyTorch definitions (the draws bit for bit);
- `available()`: whether the library is built here.

Inside: `library` builds and loads the C library, `interface` reads its declaration in
kernels.h, `calls` checks and makes each call, `step` holds the step and its optimizer.
With AEVB_KERNELS=0, off Linux or without a C compiler every model trains through the
compiled or eager step.
"""
from __future__ import annotations

import torch


def binarize(probs: torch.Tensor, generator: torch.Generator | None = None,
             rows: torch.Tensor | None = None) -> torch.Tensor:
    """`distributions.binarize` with the same bits, drawn in C (faster, reading the rows in
    place rather than gathering them first) for float32 CPU tensors where the library is
    built; the PyTorch definition otherwise."""
    draw = binarizer()
    if draw is None:
        from ..maths.distributions import binarize as plain

        return plain(probs, generator, rows)
    return draw(probs, generator, rows)


def binarizer():
    """`binarize` bound to the loaded library (looked up once, not per minibatch), or None
    where the library is not built here."""
    from ..maths.distributions import binarize as plain
    from . import calls, library

    lib = library.load()
    if lib is None:
        return None

    def draw(probs, generator=None, rows=None):
        if generator is not None and generator.device.type == "cpu" \
                and calls.usable(probs) and (rows is None or calls.usable_rows(rows)):
            return calls.bernoulli(lib, probs, generator, rows)
        return plain(probs, generator, rows)

    return draw


def available() -> str | None:
    """None where the C library is built and loaded here; else why not."""
    from . import library

    return None if library.load() is not None else library.unavailable_reason()


def make_step(model, optimizer):
    """The native SGVB step of `model` (`step.Step`): step(x, eps) -> bound [N] or None."""
    from .step import Step

    return Step(model, optimizer)


def adagrad(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """torch.optim.Adagrad with its update in C (`step.Adagrad`), the native step's optimizer."""
    from .step import Adagrad

    return Adagrad(params, lr=lr, weight_decay=weight_decay)


def log_weights_for(model, x: torch.Tensor):
    """`objectives.log_weights` of `model` as a callable (x_b, eps) -> [K, N_b] made by the
    native pass (the decoder's softplus sums in C), where it serves the model and x; else
    None."""
    from . import calls, library, step

    if not (step.supports_log_weights(model) and calls.usable(x)):
        return None
    lib = library.load()
    if lib is None:
        return None

    def weights(xb, eps):  # [K, N_b]
        if calls.usable(*model.decoder.parameters()):
            return step.log_weights(model, xb, eps, lib)
        from ..maths.objectives import log_weights

        return log_weights(model, xb, eps)

    return weights


def unavailable_reason(model, optimizer_name: str, device: torch.device,
                       dtype: torch.dtype = torch.float32) -> str | None:
    """None where the native step serves this model, optimizer, device and dtype; else why
    not (one clause)."""
    from . import calls, library, step

    if not step.supports(model):
        return ("it serves only tanh MLPs with a Bernoulli or Gaussian decoder and the N(0, I) "
                "prior")
    if optimizer_name != "adagrad":
        return "it serves only Adagrad (the paper's optimizer)"
    if device.type != "cpu" or dtype != torch.float32:
        return "it runs on a CPU in float32 only"
    lib = library.load()
    if lib is None:
        return f"unavailable ({library.unavailable_reason()})"
    if not calls.lib_has_step(lib):
        return "torch exports no BLAS sgemm_ for it"
    return None


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
