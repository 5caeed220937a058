"""Checks of a checkpoint's contents against what they are loaded into, before anything uses them.

torch's own `load_state_dict` of an optimizer and `Generator.set_state` take tensors of any
shape: an Adagrad sum cut short, an empty step count or a generator state whose counters point
past its 624 words then make the update or the draws (torch's fused kernels as much as
aevb.native) read and write outside their buffers. A checksum catches damage; these checks
catch a checkpoint that is consistent with its manifest but not with the model (crafted, or
from another version). Each raises AevbError with what is wrong.
"""
from __future__ import annotations

import torch

from ..errors import AevbError
from ..rng import mt19937_counters_valid

# The per-parameter state each optimizer keeps (those aevb builds: training.build.make_optimizer).
OPTIMIZER_STATE = {
    torch.optim.Adagrad: ({"sum", "step"}, set()),
    torch.optim.Adam: ({"step", "exp_avg", "exp_avg_sq"}, {"max_exp_avg_sq"}),
}


def _kind(optimizer) -> type | None:
    return next((cls for cls in OPTIMIZER_STATE if isinstance(optimizer, cls)), None)


def optimizer_state(where: str, state: dict, param_groups, optimizer) -> None:
    """`state` {index: {name: value}} and `param_groups` (as saved) against `optimizer`."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not isinstance(param_groups, list) or len(param_groups) != len(optimizer.param_groups):
        raise AevbError(f"{where}: the optimizer's parameter groups do not match the model")
    start = 0
    for saved, group in zip(param_groups, optimizer.param_groups):
        want = list(range(start, start + len(group["params"])))
        start += len(group["params"])
        if not isinstance(saved, dict) or saved.get("params") != want:
            raise AevbError(f"{where}: the optimizer's parameter groups do not match the model")
        for key, value in group.items():
            if key != "params" and key in saved and not _same_kind(saved[key], value):
                raise AevbError(f"{where}: optimizer setting {key} is {saved[key]!r}")
    kind = _kind(optimizer)
    required, optional = OPTIMIZER_STATE.get(kind, (set(), None))
    if kind is torch.optim.Adagrad and set(state) != set(range(len(params))):
        raise AevbError(f"{where}: Adagrad's state does not cover every parameter")
    for index, entries in state.items():
        if not 0 <= index < len(params):
            raise AevbError(f"{where}: optimizer state for parameter {index} of {len(params)}")
        names = set(entries)
        if not required <= names or (optional is not None and names - required - optional):
            raise AevbError(f"{where}: optimizer state of parameter {index} holds "
                            f"{sorted(names)}, expected {sorted(required)}")
        p = params[index]
        for name, value in entries.items():
            _entry(where, index, name, value, p)


def _same_kind(saved, current) -> bool:
    if isinstance(current, bool) or current is None or isinstance(saved, bool):
        return type(saved) is type(current) or current is None
    if isinstance(current, (int, float)):
        return isinstance(saved, (int, float))
    if isinstance(current, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(current) and all(
            _same_kind(s, c) for s, c in zip(saved, current))
    return isinstance(saved, type(current))


def _entry(where: str, index: int, name: str, value, p: torch.Tensor) -> None:
    what = f"{where}: optimizer state {index}.{name}"
    if name == "step":
        if torch.is_tensor(value):
            if value.numel() != 1 or not value.dtype.is_floating_point:
                raise AevbError(f"{what} must be one floating-point number, got "
                                f"{value.dtype} of shape {list(value.shape)}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise AevbError(f"{what} must be a number, got {value!r}")
        return
    if not torch.is_tensor(value):
        raise AevbError(f"{what} must be a tensor, got {value!r}")
    if value.shape != p.shape or value.dtype != p.dtype:
        raise AevbError(f"{what} is {value.dtype} {list(value.shape)}, the parameter "
                        f"{p.dtype} {list(p.shape)}")


def generator_state(where: str, name: str, state, generator: torch.Generator) -> None:
    """A saved generator state against the generator it will be set into."""
    want = generator.get_state()
    if not torch.is_tensor(state) or state.dtype != torch.uint8 or state.dim() != 1 \
            or state.numel() != want.numel():
        got = f"{state.dtype} {list(state.shape)}" if torch.is_tensor(state) else repr(state)
        raise AevbError(f"{where}: generator state {name} is {got}, expected uint8 "
                        f"[{want.numel()}]")
    if generator.device.type == "cpu" and not mt19937_counters_valid(state):
        raise AevbError(f"{where}: generator state {name} has its counters out of range")


def order(where: str, value: torch.Tensor, n: int) -> None:
    """The saved data order of the current epoch: a permutation of range(n)."""
    if value.dtype != torch.int64 or value.dim() != 1 or value.numel() != n or not torch.equal(
            torch.sort(value).values, torch.arange(n, device=value.device)):
        raise AevbError(f"{where}: the saved data order is not a permutation of the "
                        f"{n} training points")


def progress(where: str, values: dict, n: int, total: int) -> None:
    """The progress record: counts within the run's bounds."""
    ints = ("samples", "epoch", "position")
    ok = isinstance(values, dict) and all(
        isinstance(values.get(k), int) and not isinstance(values.get(k), bool)
        and values[k] >= 0 for k in ints)
    if not ok or values["position"] > n or values["samples"] > total:
        raise AevbError(f"{where}: the progress record is out of range ({values!r})")

