"""Compiled CPU kernels (kernels.c): the element-wise work of a training step, in few passes.

At the paper's minibatch of M = 100 a CPU training step spent about as long on element-wise
work (each PyTorch operation its own dispatch, output tensor and pass over memory) as on its
matrix products. kernels.c does that work for `aevb.fused` (the likelihood and its gradient,
each tanh's backward with a bias gradient, the latent layer both ways), for `fused.Adagrad`
(one pass per parameter) and for the binarization's draws (`bernoulli`: the very bits of
torch.rand with the same generator, without its locked call per element).

The C source is compiled once per machine with the system's C compiler (`cc`, or $CC) into
~/.cache/aevb/kernels (or under $XDG_CACHE_HOME) and loaded with ctypes. `load()` returns None
where that cannot be done (no compiler, not Linux, AEVB_KERNELS=0, the build fails, or this
torch lays out its generator state differently), and callers then use PyTorch operations:
the same results up to float rounding (`bernoulli`: the same bits).

The kernels take float32, C-contiguous CPU tensors (`usable`); the wrappers check that and
raise ValueError otherwise. The library links torch's own OpenMP runtime, so its parallel
loops run on the threads that torch's operations and MKL's products use, and every sum runs
in a fixed order: results do not depend on timing.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels.c")
_I64, _F32, _PTR = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
SIGNATURES = {  # name: argument types, as in kernels.c
    "aevb_bernoulli_logits": [_PTR] * 6 + [_I64] * 3 + [_F32],
    "aevb_tanh_backward": [_PTR] * 3 + [_I64] * 2,
    "aevb_gaussian_latent": [_PTR] * 5 + [_I64] * 3,
    "aevb_gaussian_latent_backward": [_PTR] * 6 + [_I64] * 3,
    "aevb_adagrad": [_PTR] * 4 + [_I64] + [_F32] * 3,
    "aevb_mt19937_bernoulli": [_PTR] * 3 + [_I64],
}


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "aevb" / "kernels"


def _cpu_flags() -> str:
    """The CPU's feature flags: -march=native code is only valid on CPUs that have them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compile(cc: str, target: Path, torch_lib: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        # -fopenmp links libgomp.so.1, which the loader resolves to the copy torch has already
        # loaded (the same soname): one thread pool, not two competing for the cores.
        # -fno-math-errno: sqrtf may not set errno, so that loops with it vectorize.
        subprocess.run([cc, "-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-fPIC",
                        "-shared",
                        str(SOURCE), "-o", str(out), "-lm",
                        f"-L{torch_lib}", f"-Wl,-rpath,{torch_lib}"],
                       check=True, capture_output=True, timeout=120)
        os.replace(out, target)  # atomic: a concurrent process sees no half-written file


def load() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they are unavailable."""
    if os.environ.get("AEVB_KERNELS", "1") == "0" or platform.system() != "Linux":
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    torch_lib = Path(torch.__file__).parent / "lib"
    key = hashlib.sha256("\0".join([SOURCE.read_text(), torch.__version__, str(torch_lib),
                                    platform.machine(), _cpu_flags()]).encode()).hexdigest()
    target = _cache_dir() / f"kernels-{key[:16]}.so"
    try:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _compile(cc, target, torch_lib)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError):
        return None
    for name, argtypes in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, None
    return lib if _draws_as_torch(lib) else None


def _draws_as_torch(lib) -> bool:
    """Whether `bernoulli` reads this torch's generator state as it is laid out in 2.x: the
    same bits and end state as torch.rand over a stretch that crosses a re-twist."""
    ours, theirs = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    probs = torch.full((1000,), 0.5)
    try:
        same = torch.equal(bernoulli(lib, probs, ours), (torch.rand(1000, generator=theirs)
                                                         < probs).float())
    except (RuntimeError, ValueError):  # too short a state, or set_state refused the bytes
        return False
    return same and torch.equal(ours.get_state(), theirs.get_state())


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
        raise ValueError("aevb.kernels take float32, contiguous CPU tensors")


def bernoulli_logits(lib, logits: torch.Tensor, x: torch.Tensor, kl: torch.Tensor,
                     rows: torch.Tensor, colsum: torch.Tensor) -> torch.Tensor:
    """Estimator B per data point, mean_l log p(x|z_l) - kl [N] (nats), from the decoder's
    logits [L*N, D] (row l*N + n: sample l of point n) for x [N, D]. It leaves log p(x|z)
    per row in rows [L*N], the logits replaced by d(-mean bound)/d(logits) =
    (sigmoid(l) - x) / (L N), and their column sums (the bias gradient) in colsum [D]."""
    _check(logits, x, kl, rows, colsum)
    n, d = x.shape
    bound = torch.empty_like(kl)
    lib.aevb_bernoulli_logits(logits.data_ptr(), x.data_ptr(), rows.data_ptr(),
                              colsum.data_ptr(), kl.data_ptr(), bound.data_ptr(),
                              logits.shape[0], n, d, 1.0 / logits.shape[0])
    return bound


def tanh_backward(lib, dh: torch.Tensor, h: torch.Tensor, colsum: torch.Tensor) -> None:
    """dh [R, H] <- dh * (1 - h^2), with its column sums into colsum [H]."""
    _check(dh, h, colsum)
    lib.aevb_tanh_backward(dh.data_ptr(), h.data_ptr(), colsum.data_ptr(), *dh.shape)


def gaussian_latent(lib, enc: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor,
                    z: torch.Tensor, kl: torch.Tensor) -> None:
    """From enc [N, 2J] = (mu, log sigma^2) and eps [L, N, J]: sigma [N, J],
    z = mu + sigma eps [L, N, J] and KL(q || N(0, I)) per data point, kl [N] (nats)."""
    _check(enc, eps, sigma, z, kl)
    lib.aevb_gaussian_latent(enc.data_ptr(), eps.data_ptr(), sigma.data_ptr(), z.data_ptr(),
                             kl.data_ptr(), *eps.shape)


def gaussian_latent_backward(lib, dz: torch.Tensor, eps: torch.Tensor, enc: torch.Tensor,
                             sigma: torch.Tensor, de: torch.Tensor, colsum: torch.Tensor):
    """The loss's gradient at enc [N, 2J] into de, from dz [L, N, J] and the KL term; de's
    column sums into colsum [2J]."""
    _check(dz, eps, enc, sigma, de, colsum)
    lib.aevb_gaussian_latent_backward(dz.data_ptr(), eps.data_ptr(), enc.data_ptr(),
                                      sigma.data_ptr(), de.data_ptr(), colsum.data_ptr(),
                                      *eps.shape)


def adagrad(lib, p: torch.Tensor, grad: torch.Tensor, state_sum: torch.Tensor,
            step: torch.Tensor, lr: float, weight_decay: float, eps: float) -> None:
    """One Adagrad step in place (torch.optim.Adagrad's update with lr_decay = 0); step, the
    optimizer's float32 step count, goes up by one."""
    _check(p, grad, state_sum, step)
    lib.aevb_adagrad(p.data_ptr(), grad.data_ptr(), state_sum.data_ptr(), step.data_ptr(),
                     p.numel(), lr, weight_decay, eps)


def bernoulli(lib, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(torch.rand(probs.shape, generator=generator) < probs) as float32 for a CPU generator:
    the same bits, and the generator left in the same state, about 10x as fast as torch's
    locked call per element (the binarization was ~10% of a training step)."""
    _check(probs)
    state = generator.get_state()
    if state.numel() < 24 + 8 * 624:  # the C code reads and writes that many bytes of it
        raise ValueError("this torch's generator state is not laid out as aevb.kernels reads")
    out = torch.empty_like(probs)
    lib.aevb_mt19937_bernoulli(state.data_ptr(), probs.data_ptr(), out.data_ptr(), probs.numel())
    generator.set_state(state)
    return out
