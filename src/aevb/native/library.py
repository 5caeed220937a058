"""The native backend's C library (kernels.c, step.c, declared in kernels.h): built once per
machine and loaded with ctypes. `calls` holds the checked Python side of each C function.

The C sources are compiled with the system's C compiler (`cc`, or $CC) into
~/.cache/aevb/kernels (or under $XDG_CACHE_HOME; a private 0700 folder, and a library that
another user owns or may write is refused: it would run as this user), keyed by the sources,
the flags, the compiler's identity, torch and the CPU. `load()` returns None where that cannot
be done (no compiler, not Linux, AEVB_KERNELS=0, the build fails, an unsafe cache, or this
torch lays out its generator state differently; `unavailable_reason()` says which, and a
failure is remembered for the process), and callers then use PyTorch operations: the same
results up to float rounding (the binarization: the same bits). Without the BLAS symbol
(`calls.lib_has_step` false) the step takes the PyTorch path too.

The signatures and structs come from kernels.h (`interface`); a library whose struct sizes
differ from them is not loaded. The library links torch's own OpenMP runtime, so its parallel
loops run on the threads that torch's operations and MKL's products use, and every sum runs
in a fixed order: results do not depend on timing. Why there is a C step at all, and what it
buys, is measured in docs/performance.md ("Decisions in the code").
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import torch

from .. import files
from . import cache as cache_folder
from . import calls, interface

SOURCES = [Path(__file__).with_name(name) for name in ("kernels.c", "step.c")]


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
    key = hashlib.sha256("\0".join([*(f.read_text() for f in (*SOURCES, interface.HEADER)),
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
    problem = cache_folder.ready(cache)
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
        problem = cache_folder.private(target, directory=False)
        if problem:
            return None, f"unsafe cache: {problem}"
        try:
            # After a rebuild, another spelling of the path: the loader hands back a library
            # already loaded under the same name instead of opening the new file.
            lib = ctypes.CDLL(str(target) if attempt == 0 else f"{cache}/./{target.name}")
            for name, (argtypes, restype) in interface.declared()[1].items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = argtypes, restype
            break
        except (OSError, AttributeError) as err:
            lib = None
            if attempt == 1:
                return None, f"the built library does not load ({err})"
            target.unlink(missing_ok=True)
    sizes, structs = (ctypes.c_int64 * 2)(), interface.declared()[0]
    lib.aevb_interface_sizes(sizes)
    if tuple(sizes) != (ctypes.sizeof(structs["aevb_layer"]),
                        ctypes.sizeof(structs["aevb_step_args"])):
        return None, "the built library's step interface differs from interface.py's structs"
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
        same = torch.equal(calls.bernoulli(lib, probs, ours), (torch.rand(1000, generator=theirs)
                                                         < probs).float())
    except (RuntimeError, ValueError):  # too short a state, or set_state refused the bytes
        return False
    return same and torch.equal(ours.get_state(), theirs.get_state())


