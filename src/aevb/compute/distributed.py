"""Multi-process training with torch.distributed, launched by torchrun.

With WORLD_SIZE unset or 1 every function here is a no-op, so the single-process path has
no distributed code in it. Backends: gloo on CPU, nccl on CUDA (one GPU per process).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..errors import AevbError


def pick_device(name: str) -> torch.device:
    """auto | cpu | cuda as a device: auto takes a CUDA GPU where there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AevbError("device cuda requested but no CUDA GPU is available")
    return torch.device(name)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (if any); returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not _active():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def rank() -> int:
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def is_main() -> bool:
    """Only rank 0 writes checkpoints, metrics, figures and reports."""
    return rank() == 0


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel around `module` when several processes train, else `module`."""
    if world_size() == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module)


def check_replicas_identical(model: torch.nn.Module) -> None:
    """Raise unless every process holds exactly rank 0's parameters (they must after training)."""
    if world_size() == 1:
        return
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    differs = torch.tensor([float(not torch.equal(flat, reference))], device=flat.device)
    dist.all_reduce(differs)
    if differs.item() > 0:
        raise AevbError("parameters differ between processes after training")


def teardown() -> None:
    """Leave the process group, all processes together (after rank 0 has written its report),
    so that none leaves while another still holds the group (docs/reliability.md)."""
    if _active():
        dist.barrier()
        dist.destroy_process_group()
