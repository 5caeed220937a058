"""How a training step's maths runs: compiled by torch.compile, eagerly, or natively.

Each model's maths is written once: the networks (`aevb.networks.mlp`) and the objectives
(`aevb.maths.objectives`). An engine only decides how that one definition is executed:

- `compiled`: torch.compile of the step. The loss function is traced once, and its
  forward and backward graphs (AOTAutograd) are compiled by Inductor, on CPU and CUDA alike;
  the optimizer's update is compiled too where torch has no fused kernel for it.
- `eager`: the same calls, executed operation by operation (every platform torch runs on).
- `native`: the optional hand-written backend (`aevb.native`), for the models it serves
  (the paper's tanh MLPs with a Bernoulli or Gaussian decoder, estimator B, Adagrad, float32
  on a CPU), kept because the benchmark measures it faster there than the compiled step (see
  docs/engines.md).

`choose` picks one from the config, the model and the run's length, and says why; a step
asks `compile_loss` and `compile_update` for its callables. Whatever cannot be compiled
falls back to eager with one warning that says so.

A hand-written backend is a package registered in BACKENDS whose module-level functions are
the `Backend` protocol; everything outside it reaches it through `backend(name)` and gets
plain callables back (the native step, its optimizer, importance sampling's log-weights, the
binarization's draws), or None where it does not serve.
"""
from __future__ import annotations

import importlib
import shutil
import warnings
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from ..errors import AevbWarning
from . import distributed

# auto compiles runs of at least this many steps: shorter ones would wait longer for the
# compiler than it saves them (docs/performance.md, "Decisions"; docs/engines.md).
COMPILE_MIN_STEPS = 20_000


# name in --engine -> the package that serves it (imported only when asked for)
BACKENDS = {"native": "aevb.native"}


class Backend(Protocol):
    """What a hand-written backend offers; each returns None where it does not serve."""

    def unavailable_reason(self, model, optimizer_name: str, device: torch.device,
                           dtype: torch.dtype = torch.float32) -> str | None:
        """None where its step serves this model, optimizer, device and dtype; else why not."""

    def make_step(self, model, optimizer) -> Callable:
        """step(x [N, D], eps [L, N, J]) -> the bound per point [N] in nats (its update made),
        or None (nothing changed) where the bound is not finite; step.usable(x, eps)."""

    def adagrad(self, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """The optimizer its step updates (torch.optim.Adagrad's state and update)."""

    def log_weights_for(self, model, x: torch.Tensor) -> Callable | None:
        """(x_b [N_b, D], eps [K, N_b, J]) -> log p(x, z) - log q(z|x) [K, N_b] in nats."""

    def binarizer(self) -> Callable | None:
        """(probs, generator, rows) -> the same bits as `distributions.binarize`."""

    def available(self) -> str | None:
        """None where it is built and loaded here; else why not."""


def backend(name: str) -> Backend:
    """The backend registered as `name` in BACKENDS."""
    return importlib.import_module(BACKENDS[name])


@dataclass(frozen=True)
class Choice:
    """The engine a run's steps take, and why (one line for the log and config.json)."""

    name: str  # native | compiled | eager
    reason: str


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why torch.compile cannot serve this device here, or None if it can."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python"
    if distributed.world_size() > 1:
        return "torchrun runs the eager step (DistributedDataParallel's hooks)"
    if device.type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            compiler = get_cpp_compiler()
        except Exception as error:  # Inductor says why in its own words
            return f"no C++ compiler for torch.compile ({str(error).splitlines()[0]})"
        if shutil.which(compiler) is None:
            return f"no C++ compiler for torch.compile ({compiler} not found)"
    return None


def choose(requested: str, native_reason: str | None, device: torch.device,
           steps: int, compile_min_steps: int = COMPILE_MIN_STEPS) -> Choice:
    """The engine for `requested` (one of config.ENGINES). `native_reason` is None where the native
    backend serves the run's model, optimizer and data, else why not; `steps` is the run's
    whole length in steps (the same on every resume, so a resumed run takes the same path);
    `compile_min_steps` the length from which compiling pays for this model (a model whose
    eager step is far slower declares less: `compile_min_steps_of`)."""
    if requested in ("auto", "native"):
        if native_reason is None:
            return Choice("native", "the hand-written step for the paper's tanh MLPs "
                                    "(measured faster than the compiled step)")
        why_not_native = f"native backend: {native_reason}"
        if requested == "auto" and steps < compile_min_steps:
            return Choice("eager", f"{why_not_native}; {steps} steps: too short for "
                                   "torch.compile to pay for its compile time (it starts at "
                                   f"{compile_min_steps} for this model)")
        return _compiled_or_eager(device, why_not_native)
    if requested == "compiled":
        return _compiled_or_eager(device, None)
    return Choice("eager", "asked for")


def compile_min_steps_of(model: torch.nn.Module) -> int:
    """The run length in steps from which `--engine auto` compiles `model`: the least that any
    of its modules declares as COMPILE_MIN_STEPS (measured in docs/engines.md), else the
    default."""
    return min([COMPILE_MIN_STEPS, *(m.COMPILE_MIN_STEPS for m in model.modules()
                                     if hasattr(m, "COMPILE_MIN_STEPS"))])


def _compiled_or_eager(device: torch.device, before: str | None) -> Choice:
    why_not = compile_unavailable_reason(device)
    prefix = f"{before}; " if before else ""
    if why_not is None:
        return Choice("compiled", f"{prefix}torch.compile of the loss, its gradient and the "
                                  f"update on {device.type}")
    return Choice("eager", prefix + why_not)


class _FirstCallFallback:
    """A compiled callable that becomes the eager one, with one warning, if compiling fails.

    Compilation happens inside the first call (callers give it one input shape), before
    anything is computed or changed, so falling back then repeats nothing. After a call has
    succeeded, errors are the caller's and pass through."""

    def __init__(self, compiled, eager, what: str):
        self.compiled, self.eager, self.what = compiled, eager, what
        self.proven = False

    def __call__(self, *args):
        if self.compiled is None:
            return self.eager(*args)
        if self.proven:
            return self.compiled(*args)
        try:
            result = self.compiled(*args)
        except Exception as error:
            import torch._dynamo.exc as exc

            if not isinstance(error, (exc.BackendCompilerFailed, exc.Unsupported,
                                      exc.InternalTorchDynamoError, OSError,
                                      RuntimeError)) or _ours(error):
                raise
            warnings.warn(AevbWarning(f"torch.compile of the {self.what} failed "
                                      f"({type(error).__name__}: "
                                      f"{str(error).strip().splitlines()[0][:200]}); "
                                      "continuing eagerly"), stacklevel=2)
            self.compiled = None
            return self.eager(*args)
        self.proven = True
        return result


def _ours(error: Exception) -> bool:
    """Errors that the eager call would raise as well (bad input), not compile failures."""
    from ..errors import AevbError

    return isinstance(error, AevbError)


def compile_loss(loss, batch_size: int):
    """`loss(*tensors)` compiled (forward and backward graphs) for full minibatches of
    `batch_size`; other sizes (an epoch's last, smaller minibatch) run eagerly rather than
    compile a second graph."""
    compiled = _FirstCallFallback(torch.compile(loss, dynamic=False), loss, "loss")

    def run(x, *rest):
        return compiled(x, *rest) if x.shape[0] == batch_size else loss(x, *rest)

    return run


def compile_update(optimizer: torch.optim.Optimizer):
    """`optimizer.step` compiled into one kernel per parameter group, unless torch already
    runs it as its fused kernel (then that is returned as it is)."""
    if any(group.get("fused") for group in optimizer.param_groups):
        return optimizer.step
    return _FirstCallFallback(torch.compile(optimizer.step), optimizer.step, "optimizer step")
