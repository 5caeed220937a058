"""The process-wide settings training needs, made by one function that both `aevb train` and
`aevb.train()` call, so the Python API and the command train at the same speed and resume
bitwise alike (the measurements: docs/performance.md and docs/reliability.md).

- MKL's reproducible mode (MKL_DYNAMIC, MKL_CBWR strict): bit-identical results from one
  process to the next. MKL reads them once, when torch loads, which is why `import aevb`
  does not import torch and `aevb.NAME` sets them before it imports anything
  (`prepare_environment`).
- Subnormal floats count as zero (FTZ/DAZ): weight decay drives the weights of pixels that
  are always 0 (MNIST's border) subnormal, where every operation takes a slow microcode path.
  Per thread, inherited by new threads: made before torch's first parallel operation.
- MKL's code path settled from one thread (one small tanh) before any parallel call.
- glibc's mmap threshold fixed, so the peak memory of large evaluations does not depend on
  thread timing.
"""
from __future__ import annotations

import os
import sys

_done = False


def prepare_environment() -> None:
    """MKL's reproducible mode, if torch has not loaded yet (afterwards it is too late)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("MKL_DYNAMIC", "FALSE")
        os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


def set_up() -> None:
    """Every setting above, once per process (later calls only renew flush-to-zero)."""
    global _done
    prepare_environment()
    from .threads import user_choice

    user_choice()  # a bad AEVB_THREADS is refused here, before any run directory exists
    import torch

    torch.set_flush_denormal(True)
    if _done:
        return
    # Two threads making MKL's first call together (the first parallel tanh) sometimes left
    # one of them on a path off by up to 1e-4 for the rest of the process; one call from this
    # thread alone (8 elements stay single-threaded) settles it.
    torch.zeros(8).tanh_()
    _steady_malloc()
    _done = True


def _steady_malloc() -> None:
    """glibc only: a fixed mmap threshold (32 MiB, its dynamic maximum) for this process.
    glibc otherwise raises the threshold whenever a large block is freed and serves later
    large blocks from per-thread arenas, so the peak varied with thread timing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    M_MMAP_THRESHOLD = -3
    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
