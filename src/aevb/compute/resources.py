"""Memory a request needs, checked before it is made: a model, a training step's activations,
importance sampling's noise. A request that cannot fit is refused in one line (AevbError)
instead of being allocated until the machine swaps or the kernel kills the process.

The estimates are upper bounds of the right order (they count float32 values), not exact
figures: they exist to catch requests that are off by orders of magnitude (`--mc-samples
1000000`, `hidden [2000000]` in a crafted config.json), not to pack memory tightly.
"""
from __future__ import annotations

import math
import os

from ..errors import AevbError

FLOAT = 4  # bytes of one float32 value
# Share of the available memory one request may take: the rest is the process, the data
# set and whatever else the machine runs.
SHARE = 0.8


def available_bytes() -> int | None:
    """Memory the kernel can give this process now (MemAvailable, Linux), else the physical
    memory; None where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def require(nbytes: float, what: str, advice: str = "") -> None:
    """Raise AevbError unless `nbytes` fit in this machine's available memory."""
    available = available_bytes()
    if available is None or nbytes <= SHARE * available:
        return
    raise AevbError(f"{what} needs about {_size(nbytes)} of memory, more than this machine "
                    f"has available ({_size(available)})" + (f"; {advice}" if advice else ""))


def parameter_count(model_config) -> int:
    """The number of parameters of the VAE of `model_config`, counted on PyTorch's meta
    device (no memory is allocated)."""
    import torch

    from ..model import VAE

    with torch.device("meta"):
        model = VAE(model_config)
    return sum(p.numel() for p in model.parameters())


def check_model(model_config, where: str) -> None:
    """A model's weights, gradients and optimizer state (about 5 copies) must fit."""
    c = model_config
    # A cheap bound first: counting on the meta device still builds Python objects per layer.
    rough = (c.data_dim + c.latent_dim) * max(c.hidden, default=1) * 2
    if rough > 1e12:
        require(rough * FLOAT, f"the model of {where}")
    require(5 * FLOAT * parameter_count(c), f"the model of {where}")


def check_step(model_config, batch: int, samples_per_point: int, where: str) -> None:
    """One training step's activations: `samples_per_point` (L or k) samples of z for each of
    `batch` points, through every layer, kept for the backward pass."""
    from ..networks import widest

    c = model_config
    layers = 2 * len(c.hidden) + 4
    nbytes = 2 * FLOAT * batch * samples_per_point * widest(c) * layers
    require(nbytes, f"a training step of {where} (minibatch {batch}, "
            f"{samples_per_point} samples of z per point)",
            "use fewer --mc-samples or a smaller --batch-size")


def check_noise(k: int, n: int, latent_dim: int, what: str) -> None:
    require(FLOAT * math.prod((k, n, latent_dim)), what)
