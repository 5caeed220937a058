"""Run directories: config.json, model.safetensors, state.safetensors and metrics.jsonl.

Nothing in a run directory is a pickle: weights, optimizer state and RNG states are
safetensors, everything else JSON. Files are replaced atomically (temporary file, fsync,
rename), so an interrupted write leaves the previous version in place.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import AevbError
from .model import VAE, ModelConfig

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE = "state.safetensors"
METRICS = "metrics.jsonl"
RUN_FILES = (CONFIG, WEIGHTS, STATE, METRICS)


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refuse_existing_run(run_dir: Path) -> None:
    """Raise if run_dir already holds a run: nothing trained is ever overwritten."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise AevbError(f"{run_dir} exists and is not a directory")
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if present:
        raise AevbError(f"{run_dir} already holds a run ({', '.join(present)}); "
                        "choose another --out")


def prepare_run_dir(run_dir: Path) -> None:
    """Create run_dir, refusing one that already holds a run."""
    refuse_existing_run(run_dir)
    Path(run_dir).mkdir(parents=True, exist_ok=True)


@contextmanager
def exclusive(run_dir, active: bool = True, wait: bool = False):
    """Hold run_dir/.lock while training: a second process that tries to train or resume the
    same run gets an AevbError instead of interleaving checkpoints (wait=True: it waits its
    turn instead). The lock goes with the process that holds it, so a killed run leaves none
    behind. active=False: no lock (the non-writing ranks under torchrun)."""
    if not active:
        yield
        return
    import fcntl

    with open(Path(run_dir) / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise AevbError(f"{run_dir} is being trained by another process; wait for it to "
                            "finish or stop it") from None
        yield


def write_config(run_dir: Path, info: dict) -> None:
    atomic_write(Path(run_dir) / CONFIG, (json.dumps(info, indent=2) + "\n").encode())


def read_config(run_dir) -> dict:
    path = Path(run_dir) / CONFIG
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AevbError(f"{run_dir}: not a run directory (no {CONFIG})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AevbError(f"{path}: corrupt JSON") from None


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
    atomic_write(Path(run_dir) / STATE, st_save(tensors, metadata=meta))
    atomic_write(Path(run_dir) / WEIGHTS, st_save(weights, metadata={"format": "pt"}))


def _read_safetensors(path: Path) -> tuple[dict, dict]:
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
    try:
        model = VAE(ModelConfig(**info["model"]))
    except (KeyError, TypeError):
        raise AevbError(f"{run_dir}/{CONFIG}: no valid model section") from None
    weights, _ = _read_safetensors(Path(run_dir) / WEIGHTS)
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
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                               if k.startswith("model.")}, strict=True)
        scalars = json.loads(meta["optimizer_scalars"])
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for key, value in scalars.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state,
                                   "param_groups": json.loads(meta["param_groups"])})
        for name, gen in generators.items():
            if name != "noise" or rank == 0:
                gen.set_state(tensors[f"rng.{name}"])
        extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
        return {"progress": json.loads(meta["progress"]), "order": tensors.get("order"),
                "extra": extra}
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise AevbError(f"{run_dir}/{STATE}: damaged or from another run ({err})") from None


def read_progress(run_dir) -> dict:
    """The progress record of a run's last checkpoint (samples, epoch, ...)."""
    _, meta = _read_safetensors(Path(run_dir) / STATE)
    try:
        return json.loads(meta["progress"])
    except (KeyError, ValueError):
        raise AevbError(f"{run_dir}/{STATE}: no progress record") from None


def append_metrics(run_dir: Path, record: dict) -> None:
    append_jsonl(Path(run_dir) / METRICS, record)


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir) -> list[dict]:
    """The evaluation records; a line cut short by a crash is skipped."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir, samples: int) -> None:
    """Drop records made after the checkpoint at `samples` (they will be made again)."""
    kept = [r for r in read_metrics(run_dir) if r["samples"] <= samples]
    atomic_write(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode())
