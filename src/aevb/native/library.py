"""The native backend's C library (kernels.c, step.c): a whole training step in one call,
and the element-wise kernels around it.

At the paper's minibatch of M = 100 a CPU training step spent about as long on element-wise
work and on Python and torch's dispatch between some forty operations as on its matrix
products. step.c runs `aevb.native.step`'s whole step (`plan_step`, `vae_step`): the products go
straight to the BLAS sgemm that torch itself uses (MKL's, found in torch's library), each
followed by its element-wise work on the same thread's columns, and each weight's Adagrad
update is made block by block right after that block of its gradient. kernels.c holds the
element-wise passes (the Bernoulli likelihood and its gradient, the latent layer), the
Adagrad update for `aevb.native.step.Adagrad`, the softplus sums of importance sampling
(`softplus_sums`) and the binarization's draws (`bernoulli`: the very bits of torch.rand with
the same generator, reading a minibatch's rows in place).

The C sources are compiled once per machine with the system's C compiler (`cc`, or $CC) into
~/.cache/aevb/kernels (or under $XDG_CACHE_HOME; a private 0700 folder, and a library that
another user owns or may write is refused: it would run as this user) and loaded with ctypes,
keyed by the sources, the flags, the compiler's identity, torch and the CPU. `load()` returns
None where that cannot be done (no compiler, not Linux, AEVB_KERNELS=0, the build fails, an
unsafe cache, or this torch lays out its generator state differently; `unavailable_reason()`
says which, and a failure is remembered for the process), and callers then use PyTorch operations:
the same results up to float rounding (`bernoulli`: the same bits). Without the BLAS symbol
(`lib_has_step` false) the step takes the PyTorch path too.

The kernels take float32, C-contiguous CPU tensors (`usable`); the wrappers check that, and
the sizes the C code will touch, and raise ValueError otherwise. The step's arguments are two
structs declared once in kernels.h and mirrored here (`Layer`, `StepArgs`); a library whose
struct sizes differ from these is not loaded. The library links torch's
own OpenMP runtime, so its parallel loops run on the threads that torch's operations and
MKL's products use, and every sum runs in a fixed order: results do not depend on timing.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import files

SOURCES = [Path(__file__).with_name(name) for name in ("kernels.c", "step.c")]
HEADER = Path(__file__).with_name("kernels.h")
_I64, _F32, _PTR = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
SIGNATURES = {  # name: (argument types, result type), as in kernels.c and step.c
    "aevb_bernoulli_logits": ([_PTR] * 7 + [_I64] * 3 + [_F32], None),
    "aevb_softplus_sums": ([_PTR] * 3 + [_I64] * 2, None),
    "aevb_adagrad": ([_PTR] * 4 + [_I64] + [_F32] * 3, None),
    "aevb_mt19937_bernoulli": ([_PTR] * 3 + [_I64, _PTR] + [_I64] * 2, ctypes.c_int),
    "aevb_vae_step": ([_PTR, _PTR], ctypes.c_int),
    "aevb_interface_sizes": ([_PTR], None),
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


def _flags() -> list[str]:
    # -fopenmp links libgomp.so.1, which the loader resolves to the copy torch has already
    # loaded (the same soname): one thread pool, not two competing for the cores.
    # -fno-math-errno: sqrtf may not set errno, so that loops with it vectorize.
    # 512-bit vectors on x86 (measured faster: docs/performance.md, "Decisions"; without
    # AVX-512 the flag changes nothing).
    wide = ["-mprefer-vector-width=512"] if platform.machine() in ("x86_64", "AMD64") else []
    return ["-O3", "-march=native", *wide, "-fno-math-errno", "-fopenmp", "-fPIC", "-shared"]


# Seconds a compiler may take (the build takes ~2 s here): a hanging $CC is ended, with every
# process it started, rather than stalling training.
BUILD_TIMEOUT_S = float(os.environ.get("AEVB_BUILD_TIMEOUT", "120"))


def _run_bounded(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run `command` in its own process group; on a timeout end the whole group (a compiler
    driver's children too) and raise subprocess.TimeoutExpired."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _seal(path: Path) -> bytes:
    """The record kept beside a built library: its size and SHA-256."""
    data = path.read_bytes()
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()


def _sealed(target: Path) -> bool:
    """Whether the library matches the record written when it was built: a library cut short
    (a full disk, a kill during a copy) is never loaded (mapping it ended in SIGBUS)."""
    seal = target.with_name(target.name + ".sha256")
    try:
        return seal.read_bytes() == _seal(target)
    except OSError:
        return False


def _compile(cc: str, target: Path, torch_lib: Path) -> str | None:
    """Build the library at `target`, with its seal beside it; None when done, else why not
    (the compiler's stderr)."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        command = [cc, *_flags(), *map(str, SOURCES), "-o", str(out), "-lm",
                   f"-L{torch_lib}", f"-Wl,-rpath,{torch_lib}"]
        try:
            run = _run_bounded(command, BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"the C build did not finish in {BUILD_TIMEOUT_S:g} s (ended)"
        except (OSError, subprocess.SubprocessError) as err:
            return f"the C build failed ({type(err).__name__}: {err})"
        if run.returncode != 0:
            lines = [line for line in (run.stderr or "").splitlines() if line.strip()]
            return f"the C build failed: {'; '.join(lines[:3]) or f'exit status {run.returncode}'}"
        try:
            out.chmod(0o700)
            with open(out, "rb") as f:  # on disk before the rename makes it visible
                os.fsync(f.fileno())
            seal = Path(tmp) / (target.name + ".sha256")
            seal.write_bytes(_seal(out))
            with open(seal, "rb") as f:
                os.fsync(f.fileno())
            os.replace(seal, target.with_name(seal.name))
            os.replace(out, target)  # atomic: a concurrent process sees no half-written file
            files.fsync_dir(target.parent)
        except OSError as err:
            return f"the built library could not be stored ({err.strerror or err})"
    return None


def _compiler_identity(cc: str) -> tuple[str | None, str | None]:
    """(what identifies the compiler: its path and version text, None) or (None, why not)."""
    try:
        run = _run_bounded([cc, "--version"], min(60.0, BUILD_TIMEOUT_S))
    except subprocess.TimeoutExpired:
        return None, f"the C compiler {cc} did not answer --version (ended)"
    except (OSError, subprocess.SubprocessError) as err:
        return None, f"the C compiler {cc} does not run ({type(err).__name__})"
    if run.returncode != 0:
        return None, f"the C compiler {cc} does not run (exit status {run.returncode})"
    return f"{shutil.which(cc) or cc}\0{run.stdout}", None


def _private(path: Path, directory: bool) -> str | None:
    """Why the cache entry `path` cannot be trusted (another user owns it, or others may write
    it, so they could plant code that this process would run), or None."""
    info = path.stat()
    if info.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        if not directory:
            return f"{path} may be written by other users (mode {info.st_mode & 0o777:o})"
        path.chmod(0o700)  # our own cache folder: make it private rather than refuse it
    return None


def _unsafe_path(cache: Path) -> str | None:
    """Why the path to the cache cannot be trusted, or None: it passes through a symbolic
    link that neither this user nor root owns, or through a folder others may write without
    the sticky bit (either would let another user swap the folder or the code in it)."""
    uid = os.getuid()
    path = Path(os.path.abspath(cache))
    parts = [Path(*path.parts[:i]) for i in range(1, len(path.parts) + 1)]
    for part in parts:
        try:
            info = os.lstat(part)
        except FileNotFoundError:
            return None  # the rest is created by us, privately
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (uid, 0):
                return f"{part} is a symbolic link owned by another user (uid {info.st_uid})"
            info = os.stat(part)
        if stat.S_ISDIR(info.st_mode) and part != parts[-1]:
            if info.st_uid not in (uid, 0):
                return f"{part} belongs to another user (uid {info.st_uid})"
            if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
                return f"{part} may be written by other users (mode {info.st_mode & 0o777:o})"
    return None


def _cache_ready(cache: Path) -> str | None:
    """Create the private cache folder (0700) and check it and the path to it; None if
    usable."""
    try:
        problem = _unsafe_path(cache)
        if problem:
            return problem
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.mkdir(mode=0o700, exist_ok=True)
        problem = _unsafe_path(cache)  # again: nothing may have been swapped in meanwhile
        if problem:
            return problem
        if cache.is_symlink() and cache.resolve() != cache:
            return f"{cache} is a symbolic link (to {cache.resolve()}); make it a folder"
        return _private(cache, directory=True)
    except OSError as err:
        return f"the cache folder {cache} is not usable ({err.strerror or err})"


# Per process: (AEVB_KERNELS, CC, cache folder) -> (library or None, why it is unavailable).
# A failed build is not retried in the same process.
_LOADED: dict[tuple, tuple] = {}


def load() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they are unavailable
    (`unavailable_reason()` says why)."""
    return _loaded()[0]


def unavailable_reason() -> str | None:
    """Why `load()` returns None: the platform, no compiler, the compiler's error, an unsafe
    cache, ...; None when the kernels are available."""
    return _loaded()[1]


def _loaded() -> tuple:
    key = (os.environ.get("AEVB_KERNELS", "1"), os.environ.get("CC"), str(_cache_dir()))
    if key not in _LOADED:
        _LOADED[key] = _build_and_load()
    return _LOADED[key]


def library_name(compiler_identity: str) -> str:
    """The cached library's file name: a hash of everything that shapes the binary (sources,
    flags, compiler, torch and its location, the CPU)."""
    torch_lib = Path(torch.__file__).parent / "lib"
    key = hashlib.sha256("\0".join([*(f.read_text() for f in (*SOURCES, HEADER)),
                                    torch.__version__, str(torch_lib), platform.machine(),
                                    _cpu_flags(), compiler_identity, *_flags()]).encode())
    return f"kernels-{key.hexdigest()[:16]}.so"


def _build_and_load() -> tuple:
    if os.environ.get("AEVB_KERNELS", "1") == "0":
        return None, "AEVB_KERNELS=0"
    if platform.system() != "Linux":
        return None, f"built on Linux only, this is {platform.system()}"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no C compiler (cc, gcc or $CC)"
    identity, problem = _compiler_identity(cc)
    if problem:
        return None, problem
    torch_lib = Path(torch.__file__).parent / "lib"
    cache = _cache_dir()
    problem = _cache_ready(cache)
    if problem:
        return None, f"unsafe or unusable cache: {problem}"
    target = cache / library_name(identity)
    lib = None
    for attempt in range(2):  # a cached library that does not load, or lacks a symbol: rebuild
        if target.exists() and not _sealed(target):  # cut short or altered: never mapped
            target.unlink(missing_ok=True)
        if not target.exists():
            problem = _compile(cc, target, torch_lib)
            if problem:
                return None, problem
        problem = _private(target, directory=False)
        if problem:
            return None, f"unsafe cache: {problem}"
        try:
            # After a rebuild, another spelling of the path: the loader hands back a library
            # already loaded under the same name instead of opening the new file.
            lib = ctypes.CDLL(str(target) if attempt == 0 else f"{cache}/./{target.name}")
            for name, (argtypes, restype) in SIGNATURES.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = argtypes, restype
            break
        except (OSError, AttributeError) as err:
            lib = None
            if attempt == 1:
                return None, f"the built library does not load ({err})"
            target.unlink(missing_ok=True)
    sizes = (_I64 * 2)()
    lib.aevb_interface_sizes(sizes)
    if tuple(sizes) != (ctypes.sizeof(Layer), ctypes.sizeof(StepArgs)):
        return None, "the built library's step interface differs from library.py's structs"
    lib.aevb_sgemm = _torch_sgemm(torch_lib)
    if not _draws_as_torch(lib):
        return None, "this torch lays out its generator state otherwise than the kernels read"
    return lib, None


def _torch_sgemm(torch_lib: Path) -> int | None:
    """The address of the BLAS sgemm_ that torch's CPU library exports (MKL's on x86 builds),
    for `vae_step`'s products; None where it exports none."""
    try:  # the library torch has loaded already: dlopen hands back the same copy
        return ctypes.cast(ctypes.CDLL(str(torch_lib / "libtorch_cpu.so")).sgemm_,
                           ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


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


class Layer(ctypes.Structure):
    """kernels.h's aevb_layer: one Linear layer of the step, field by field."""
    _fields_ = [(name, _PTR) for name in (
        "weight", "bias", "grad_weight", "grad_bias", "sum_weight", "sum_bias",
        "step_weight", "step_bias", "out", "grad_in")] + [("fan_in", _I64), ("fan_out", _I64)]


class StepArgs(ctypes.Structure):
    """kernels.h's aevb_step_args: everything one call of the step reads and writes."""
    _fields_ = [(name, _PTR) for name in ("x", "eps", "sigma", "z", "kl", "rows", "de",
                                          "bound")] + \
        [(name, _I64) for name in ("samples", "n", "n_encoder", "n_decoder")] + \
        [("likelihood", ctypes.c_int32), ("layers", ctypes.POINTER(Layer)), ("update", ctypes.c_int32), ("lr", _F32),
         ("weight_decay", _F32), ("adagrad_eps", _F32), ("spent", _PTR)]


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
    likelihood: int  # LIKELIHOODS' code
    x_shape: torch.Size
    eps_shape: torch.Size


LIKELIHOODS = {"bernoulli": 0, "gaussian": 1}  # kernels.h's AEVB_BERNOULLI, AEVB_GAUSSIAN
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
    array = (Layer * len(layers))(*(
        Layer(**{name: None if t is None else t.data_ptr() for name, t in given.items()},
              fan_in=fan_in, fan_out=out) for given, (fan_in, out) in zip(tensors, chain)))
    return StepPlan(tuple(t.untyped_storage() for t in held), updates, array,
                    {k: scratch[k].data_ptr() for k in SCRATCH}, n_encoder,
                    LIKELIHOODS[likelihood], torch.Size(x_shape), torch.Size(eps_shape))


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
    args = StepArgs(x=x.data_ptr(), eps=eps.data_ptr(), bound=bound.data_ptr(),
                    samples=eps.shape[0], n=eps.shape[1], n_encoder=plan.n_encoder,
                    n_decoder=n_layers - plan.n_encoder, likelihood=plan.likelihood,
                    layers=plan.layers,
                    update=adagrad is not None, spent=None if spent is None else spent.data_ptr(),
                    **plan.scratch, **(dict(zip(("lr", "weight_decay", "adagrad_eps"), adagrad))
                                       if adagrad else {}))
    status = lib.aevb_vae_step(lib.aevb_sgemm, ctypes.byref(args))
    if status == 2:
        raise MemoryError("aevb.native.vae_step: no memory for the step's scratch buffer")
    return bound, status == 0


def lib_has_step(lib) -> bool:
    """Whether `vae_step` can run with these kernels (it needs torch's BLAS)."""
    return lib is not None and getattr(lib, "aevb_sgemm", None) is not None
