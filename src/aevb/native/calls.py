"""The Python side of each C function of the native library: the checks of the tensors it
will read and write (float32, contiguous, CPU, the sizes the C code touches), then the call.
A check that fails raises ValueError; the C code trusts what passes.

The whole step (`plan_step`, `vae_step`): the products go straight to the BLAS sgemm that
torch itself uses (MKL's, found in torch's library), each followed by its element-wise work on
the same thread's columns, and each weight's Adagrad update is made block by block right
after that block of its gradient. The element-wise kernels: the Bernoulli likelihood and its
gradient, the Adagrad update, the softplus sums of importance sampling and the binarization's
draws (`bernoulli`: the very bits of torch.rand with the same generator).
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import torch

from .interface import declared


def _structs():
    structs, _, constants = declared()
    return structs["aevb_layer"], structs["aevb_step_args"], constants


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels take these tensors: float32, contiguous, on the CPU."""
    # (is_cpu, not .device.type: this runs some 50 times a step, and .device costs 0.5 us)
    for t in tensors:
        if not (t.dtype is torch.float32 and t.is_cpu and t.layout is torch.strided
                and t.is_contiguous()):
            return False
    return True


def _check(*tensors: torch.Tensor) -> None:
    if not usable(*tensors):
        raise ValueError("aevb.native take float32, contiguous CPU tensors")


def bernoulli_logits(lib, logits: torch.Tensor, x: torch.Tensor, kl: torch.Tensor,
                     rows: torch.Tensor, colsum: torch.Tensor,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """Estimator B per data point, mean_l log p(x|z_l) - kl [N] (nats), from the decoder's
    logits [L*N, D] (row l*N + n: sample l of point n; plus `bias` [D] if given) for x
    [N, D]. It leaves log p(x|z) per row in rows [L*N], the logits replaced by
    d(-mean bound)/d(logits) = (sigmoid(l) - x) / (L N), and their column sums (the bias
    gradient) in colsum [D]."""
    n, d = x.shape
    bias = torch.zeros(d) if bias is None else bias
    _check(logits, bias, x, kl, rows, colsum)
    if logits.dim() != 2 or logits.shape[1] != d or logits.shape[0] % n or kl.numel() != n \
            or rows.numel() != logits.shape[0] or colsum.numel() != d or bias.numel() != d:
        raise ValueError("aevb.native.bernoulli_logits: shapes do not match")
    bound = torch.empty_like(kl)
    lib.aevb_bernoulli_logits(logits.data_ptr(), bias.data_ptr(), x.data_ptr(),
                              rows.data_ptr(), colsum.data_ptr(), kl.data_ptr(),
                              bound.data_ptr(), logits.shape[0], n, d, 1.0 / logits.shape[0])
    return bound


def softplus_sums(lib, logits: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sum_d softplus(logits[r, d] + bias[d]) for each row r of logits [R, D]: [R] (nats)."""
    _check(logits, bias)
    if logits.dim() != 2 or bias.shape != logits.shape[1:]:
        raise ValueError("aevb.native.softplus_sums takes logits [R, D] and a bias [D]")
    out = logits.new_empty(logits.shape[0])
    lib.aevb_softplus_sums(logits.data_ptr(), bias.data_ptr(), out.data_ptr(), *logits.shape)
    return out


def adagrad(lib, p: torch.Tensor, grad: torch.Tensor, state_sum: torch.Tensor,
            step: torch.Tensor, lr: float, weight_decay: float, eps: float) -> None:
    """One Adagrad step in place (torch.optim.Adagrad's update with lr_decay = 0); step, the
    optimizer's float32 step count, goes up by one."""
    _check(p, grad, state_sum, step)
    if not grad.numel() == state_sum.numel() == p.numel() or step.numel() != 1:
        raise ValueError("aevb.native.adagrad: the gradient and the sum of squares must have "
                         "the parameter's size and the step count one element")
    lib.aevb_adagrad(p.data_ptr(), grad.data_ptr(), state_sum.data_ptr(), step.data_ptr(),
                     p.numel(), lr, weight_decay, eps)


def bernoulli(lib, probs: torch.Tensor, generator: torch.Generator,
              rows: torch.Tensor | None = None) -> torch.Tensor:
    """(torch.rand(p.shape, generator=generator) < p) as float32 for p = probs, or
    probs[rows] (rows: int64 indices into probs' first dimension, read in place), with a CPU
    generator: the same bits, and the generator left in the same state, faster than torch's
    locked call per element (docs/performance.md, "Decisions")."""
    _check(probs)
    if rows is not None and not usable_rows(rows):
        raise ValueError("aevb.native.bernoulli takes rows as a 1-d int64 CPU tensor")
    state = generator.get_state()
    if state.numel() < 24 + 8 * 624:  # the C code reads and writes that many bytes of it
        raise ValueError("this torch's generator state is not laid out as aevb.native reads")
    from ..rng import mt19937_counters_valid

    if not mt19937_counters_valid(state):
        raise ValueError("aevb.native.bernoulli: the generator's counters are out of range")
    if rows is None:
        out, count, width = torch.empty_like(probs), 1, probs.numel()
    else:
        count, width = rows.numel(), math.prod(probs.shape[1:])
        out = probs.new_empty((count, *probs.shape[1:]))
    if lib.aevb_mt19937_bernoulli(state.data_ptr(), probs.data_ptr(),
                                  None if rows is None else rows.data_ptr(),
                                  probs.shape[0] if rows is not None else 1,
                                  out.data_ptr(), count, width) != 0:
        raise ValueError("aevb.native.bernoulli: a row index is out of range")
    generator.set_state(state)
    return out


def usable_rows(rows: torch.Tensor) -> bool:
    """Whether `bernoulli` takes these row indices: 1-d, int64, contiguous, on the CPU."""
    return (rows.dtype is torch.int64 and rows.dim() == 1 and rows.is_cpu
            and rows.is_contiguous())


@dataclass(frozen=True)
class LayerTensors:
    """What the step needs of one Linear layer (see kernels.h's aevb_layer); the Adagrad
    state is None where the step makes no update, grad_in None for the encoder's first
    layer."""
    weight: torch.Tensor
    bias: torch.Tensor
    sum_weight: torch.Tensor | None
    sum_bias: torch.Tensor | None
    step_weight: torch.Tensor | None
    step_bias: torch.Tensor | None
    out: torch.Tensor
    grad_in: torch.Tensor | None


@dataclass(frozen=True)
class StepPlan:
    """The step's arguments that stay the same from step to step (made by `plan_step`) and
    the shapes of those that change (x, eps), so that each step only checks and sets those
    (rebuilding them cost 10% of a step: docs/performance.md, "Decisions"). It holds the
    storage of every tensor whose address it holds, so none of that memory is freed while
    the plan lives: a tensor at one of its addresses is in that same storage."""
    storages: tuple
    updates: bool  # whether it holds Adagrad's state
    layers: ctypes.Array  # of Layer
    scratch: dict  # sigma, z, kl, rows, de: their addresses
    n_encoder: int
    likelihood: int  # kernels.h's AEVB_BERNOULLI or AEVB_GAUSSIAN
    x_shape: torch.Size
    eps_shape: torch.Size


LIKELIHOODS = ("bernoulli", "gaussian")  # kernels.h's AEVB_BERNOULLI, AEVB_GAUSSIAN


SCRATCH = ("sigma", "z", "kl", "rows", "de")


def plan_step(layers: list[LayerTensors], n_encoder: int, scratch: dict,
              x_shape: torch.Size, eps_shape: torch.Size,
              likelihood: str = "bernoulli") -> StepPlan:
    """Checks and records the arguments of step.c's whole training step: the Linear layers,
    encoder first, and the `scratch` buffers named in SCRATCH (sigma [N, J], z [L N, J],
    kl [N], rows [L N], de [N, 2J]) for x of `x_shape` [N, ...] (D values a point) and eps of
    `eps_shape` [L, N, J]; the decoder's last layer gives D logits (bernoulli) or D means and
    D log-variances (gaussian). Raises ValueError where a tensor is missing, not usable or not the
    size the C code will read or write."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"aevb.native.plan_step: likelihood must be one of {LIKELIHOODS}")
    (samples, n, j), n_x, d = eps_shape, x_shape[0], math.prod(x_shape[1:])
    if not 1 <= n_encoder < len(layers):
        raise ValueError("aevb.native.plan_step: an encoder and a decoder")
    updates = layers[0].sum_weight is not None
    chain = [tuple(layer.weight.shape[::-1]) for layer in layers]  # (in, out) of each layer
    if any(layer.weight.dim() != 2 for layer in layers) or min(
            samples, n, j, d, *(size for pair in chain for size in pair)) < 1:
        raise ValueError("aevb.native.plan_step: a layer, the minibatch or the data has zero "
                         "width")
    tensors = []
    for k, layer in enumerate(layers):
        (fan_in, out), rows = chain[k], n if k < n_encoder else samples * n
        grads = (layer.weight.grad, layer.bias.grad)
        expected = {"weight": out * fan_in, "bias": out, "grad_weight": out * fan_in,
                    "grad_bias": out, "out": rows * out,
                    **({"sum_weight": out * fan_in, "sum_bias": out, "step_weight": 1,
                        "step_bias": 1} if updates else {}),
                    **({"grad_in": rows * fan_in} if k != 0 else {})}
        given = {"weight": layer.weight, "bias": layer.bias, "grad_weight": grads[0],
                 "grad_bias": grads[1], "out": layer.out, "sum_weight": layer.sum_weight,
                 "sum_bias": layer.sum_bias, "step_weight": layer.step_weight,
                 "step_bias": layer.step_bias, "grad_in": layer.grad_in}
        for name, t in given.items():
            if (t is not None) != (name in expected) and not (name == "grad_in" and k == 0) \
                    or name in expected and t.numel() != expected[name]:
                raise ValueError(f"aevb.native.plan_step: layer {k}'s {name} is missing or "
                                 "not the size of its weight")
        tensors.append(given)
    if any(chain[k][0] != chain[k - 1][1] for k in range(1, len(chain)) if k != n_encoder) \
            or (chain[0][0], chain[n_encoder - 1][1], chain[n_encoder][0], chain[-1][1]) \
            != (d, 2 * j, j, d * (1 + (likelihood == "gaussian"))) or n_x != n:
        raise ValueError("aevb.native.plan_step: the layers do not chain x to 2J and J to x")
    sizes = dict(zip(SCRATCH, (n * j, samples * n * j, n, samples * n, n * 2 * j)))
    if set(scratch) != set(SCRATCH) or any(scratch[k].numel() != sizes[k] for k in SCRATCH):
        raise ValueError("aevb.native.plan_step: a buffer is not the size the step needs")
    held = [t for given in tensors for t in given.values() if t is not None] + \
        [scratch[k] for k in SCRATCH]
    _check(*held)
    layer_struct, _, constants = _structs()
    array = (layer_struct * len(layers))(*(
        layer_struct(**{name: None if t is None else t.data_ptr() for name, t in given.items()},
              fan_in=fan_in, fan_out=out) for given, (fan_in, out) in zip(tensors, chain)))
    return StepPlan(tuple(t.untyped_storage() for t in held), updates, array,
                    {k: scratch[k].data_ptr() for k in SCRATCH}, n_encoder,
                    constants[f"AEVB_{likelihood.upper()}"], torch.Size(x_shape),
                    torch.Size(eps_shape))


STEP_KINDS = ("forward products with bias and tanh", "input-gradient products with tanh's backward",
              "weight-gradient products with the Adagrad update", "other compiled work")


def vae_step(lib, plan: StepPlan, x: torch.Tensor, eps: torch.Tensor,
             adagrad: tuple[float, float, float] | None,
             spent: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
    """step.c's whole training step with `plan` (see `plan_step`) on x [N, ...], eps [L, N, J]:
    estimator B per data point [N] (nats) and whether the step was made: every .grad filled
    and, with `adagrad` = (lr, weight decay, eps) and a plan that holds Adagrad's state, the
    weights updated. An update stops on a non-finite bound before the backward pass: nothing
    else changes then, and the second value is False. `spent`, a float64 tensor of
    len(STEP_KINDS), adds up the seconds spent on each of STEP_KINDS (for the bench)."""
    if not lib_has_step(lib):
        raise ValueError("aevb.native.vae_step needs the compiled step")
    if x.shape != plan.x_shape or eps.shape != plan.eps_shape:
        raise ValueError("aevb.native.vae_step: x or eps is not the shape of its plan")
    if adagrad is not None and not plan.updates:
        raise ValueError("aevb.native.vae_step: an update needs a plan with Adagrad's state")
    _check(x, eps)
    if spent is not None and not (spent.dtype is torch.float64 and spent.is_cpu
                                  and spent.is_contiguous() and spent.numel() == len(STEP_KINDS)):
        raise ValueError("aevb.native.vae_step: spent must be float64 [4] on the CPU")
    bound = x.new_empty(x.shape[0])
    n_layers = len(plan.layers)
    # Arguments per call: the plan may be shared, and the call releases the GIL, so another
    # thread's x and eps must never land in this call's arguments.
    step_args = _structs()[1]
    numbers = dict(zip(("lr", "weight_decay", "adagrad_eps"), adagrad)) if adagrad else {}
    args = step_args(x=x.data_ptr(), eps=eps.data_ptr(), bound=bound.data_ptr(),
                     samples=eps.shape[0], n=eps.shape[1], n_encoder=plan.n_encoder,
                     n_decoder=n_layers - plan.n_encoder, likelihood=plan.likelihood,
                     layers=plan.layers, update=adagrad is not None,
                     spent=None if spent is None else spent.data_ptr(), **plan.scratch,
                     **numbers)
    status = lib.aevb_vae_step(lib.aevb_sgemm, ctypes.byref(args))
    if status == 2:
        raise MemoryError("aevb.native.vae_step: no memory for the step's scratch buffer")
    return bound, status == 0


def lib_has_step(lib) -> bool:
    """Whether `vae_step` can run with these kernels (it needs torch's BLAS)."""
    return lib is not None and getattr(lib, "aevb_sgemm", None) is not None
