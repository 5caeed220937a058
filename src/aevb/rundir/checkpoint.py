"""A run's checkpoint: config.json, model.safetensors and state.safetensors, written and read.

Nothing in a run directory is a pickle: weights, optimizer state and RNG states are
safetensors, everything else JSON. Files are replaced atomically (`files.atomic_write`), so an
interrupted write leaves the previous version in place, and recorded in manifest.json with
their SHA-256 (`integrity`), which every read verifies. A checkpoint's tensors are checked
against the model and optimizer they are loaded into (`state_checks`) before anything
touches them: the compiled kernels trust their sizes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import AevbError
from ..model import VAE, ModelConfig
from . import integrity, state_checks
from .names import CONFIG, STATE, WEIGHTS


def write_config(run_dir: Path, info: dict) -> None:
    integrity.write(run_dir, {CONFIG: (json.dumps(info, indent=2) + "\n").encode()})


def read_config(run_dir) -> dict:
    """A run's config.json, verified and checked against the schema of what aevb writes there
    (the training settings, the model, the training length) before anything is built."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if run_dir.exists() and not run_dir.is_dir():
        raise AevbError(f"{run_dir}: not a run directory (a file)")
    if path.is_file():
        integrity.verify(run_dir, [CONFIG])
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise AevbError(f"{run_dir}: not a run directory (no {CONFIG})") from None
    except IsADirectoryError:
        raise AevbError(f"{path}: a folder, not a run's config") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AevbError(f"{path}: corrupt JSON") from None
    check_info(info, str(path))
    return info


def check_info(info, where: str) -> None:
    """AevbError unless `info` has the shape of a run's config.json: a config section that
    is a valid TrainConfig, a model section that is a valid ModelConfig whose weights fit in
    memory, and a whole training length."""
    from ..config import MAX_SAMPLES, saved_config

    if not isinstance(info, dict):
        raise AevbError(f"{where}: not a run's config (a JSON {type(info).__name__})")
    try:
        saved_config(info)
    except AevbError as err:
        raise AevbError(f"{where}: invalid config section: {err}") from None
    model_config(info, where)
    total = info.get("total_samples")
    if "total_samples" in info and not (isinstance(total, int) and not isinstance(total, bool)
                                        and 1 <= total <= MAX_SAMPLES):
        raise AevbError(f"{where}: total_samples must be a whole number in 1 .. 2^50, "
                        f"got {total!r}")


def model_config(info: dict, where: str) -> ModelConfig:
    """The ModelConfig of a run's config.json, validated, its memory checked before any
    tensor is allocated."""
    from ..compute import resources

    section = info.get("model") if isinstance(info, dict) else None
    if not isinstance(section, dict):
        raise AevbError(f"{where}: no valid model section")
    try:
        config = ModelConfig(**section)
    except TypeError:
        raise AevbError(f"{where}: no valid model section") from None
    except AevbError as err:
        raise AevbError(f"{where}: invalid model section: {err}") from None
    resources.check_model(config, where)
    return config


def save_checkpoint(run_dir: Path, model: VAE, optimizer: torch.optim.Optimizer,
                    generators: dict[str, torch.Generator], progress: dict,
                    order: torch.Tensor | None = None,
                    extra: dict[str, torch.Tensor] | None = None) -> None:
    """Weights to model.safetensors; optimizer, RNG states, the current epoch's data order,
    an algorithm's own state `extra` (MCEM's chains) and `progress` to state.safetensors."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors, scalars = {}, {}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    for name, gen in generators.items():
        tensors[f"rng.{name}"] = gen.get_state().cpu()
    if order is not None:
        tensors["order"] = order.detach().cpu().contiguous()
    for name, value in (extra or {}).items():
        tensors[f"extra.{name}"] = value.detach().cpu().contiguous()
    meta = {"progress": json.dumps(progress), "param_groups": json.dumps(opt["param_groups"]),
            "optimizer_scalars": json.dumps(scalars)}
    # The state file holds its own copy of the weights, so it is complete on its own: a kill
    # between the two renames leaves a state that resumes exactly and weights that still load.
    tensors.update({f"model.{k}": v for k, v in weights.items()})
    # The state first: a kill between the two leaves a state that holds the newer weights.
    integrity.write(run_dir, {STATE: st_save(tensors, metadata=meta),
                              WEIGHTS: st_save(weights, metadata={"format": "pt"})})


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    if path.is_file():
        integrity.verify(path.parent, [path.name])
    try:
        data = path.read_bytes()
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {}) or {}
    except FileNotFoundError:
        raise AevbError(f"{path}: missing") from None
    except (SafetensorError, ValueError, UnicodeDecodeError) as err:
        raise AevbError(f"{path}: not a valid safetensors file ({err})") from None
    return tensors, meta


def load(run_dir, device: str | torch.device = "cpu") -> VAE:
    """The trained model of a run directory, rebuilt from its config.json, in eval mode."""
    info = read_config(run_dir)
    config = model_config(info, f"{run_dir}/{CONFIG}")
    weights, _ = _read_safetensors(Path(run_dir) / WEIGHTS)
    # Shapes compared on PyTorch's meta device first: a config.json that does not fit its
    # weights is refused before the model it describes is allocated.
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in VAE(config).state_dict().items()}
    if shapes != {k: tuple(v.shape) for k, v in weights.items()}:
        raise AevbError(f"{run_dir}/{WEIGHTS}: weights do not fit the model in {CONFIG} "
                        "(another configuration, or a damaged file)")
    model = VAE(config)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError:
        raise AevbError(f"{run_dir}/{WEIGHTS}: weights do not fit the model in {CONFIG} "
                        "(another configuration, or a damaged file)") from None
    return model.to(device).eval()


def load_training_state(run_dir, model: VAE, optimizer: torch.optim.Optimizer,
                        generators: dict[str, torch.Generator], rank: int = 0) -> dict:
    """Restore weights, optimizer and RNG states in place from state.safetensors; returns
    {"progress": dict, "order": tensor or None, "extra": {name: tensor}}.

    Only rank 0's noise generator is saved; other ranks keep their freshly seeded one.
    """
    tensors, meta = _read_safetensors(Path(run_dir) / STATE)
    where = f"{run_dir}/{STATE}"
    try:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        scalars = json.loads(meta["optimizer_scalars"])
        param_groups = json.loads(meta["param_groups"])
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for key, value in scalars.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        restored = {name: tensors[f"rng.{name}"] for name in generators
                    if name != "noise" or rank == 0}
        progress = json.loads(meta["progress"])
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise AevbError(f"{where}: damaged or from another run ({err})") from None
    # Every check before anything is changed: a refused checkpoint leaves model and optimizer
    # as they were.
    state_checks.optimizer_state(where, state, param_groups, optimizer)
    for name, value in restored.items():
        state_checks.generator_state(where, name, value, generators[name])
    try:
        model.load_state_dict(model_state, strict=True)
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise AevbError(f"{where}: damaged or from another run ({err})") from None
    for name, value in restored.items():
        generators[name].set_state(value)
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return {"progress": progress, "order": tensors.get("order"), "extra": extra}


def read_progress(run_dir) -> dict:
    """The progress record of a run's last checkpoint (samples, epoch, ...)."""
    _, meta = _read_safetensors(Path(run_dir) / STATE)
    try:
        return json.loads(meta["progress"])
    except (KeyError, ValueError):
        raise AevbError(f"{run_dir}/{STATE}: no progress record") from None


