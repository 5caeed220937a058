"""Safe file writes and locks: what a run directory needs of the file system, on every platform.

- `atomic_write`: temporary file, fsync, rename, fsync of the directory, so a crash or a kill
  at any moment leaves either the old or the new version, and the rename itself survives a
  power cut. A write that fails (a full disk, a read-only folder) raises AevbError naming the
  file and leaves the previous version in place.
- `write_new`: a user's output file, created exclusively (never replacing a file, never
  writing through a symlink, dangling or not) and whole (temporary file, then a hard link).
- `write_output`: `write_new`, or with `replace` an atomic replacement of what is there.
- `append_line`: one line appended to a log without following a symlink; a line cut short by
  a kill is ended first, so it cannot swallow the record that follows it.
- `remove_stale_temporaries`: the temporary files that a killed process left behind.
- `lock`: an advisory lock on a file that dies with its holder (flock on POSIX, msvcrt on
  Windows; a platform with neither gets no lock rather than no training).
"""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import AevbError

TEMP_MARK = ".tmp-"  # temporary files are named .<target name>.tmp-<random>


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows, or a file system that does not allow it
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary(path: Path, data: bytes) -> str:
    """`data` in a new temporary file beside `path`, on disk (fsynced); returns its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path, data: bytes) -> None:
    """Replace `path` by `data` atomically and durably; AevbError where it cannot be written."""
    path = Path(path)
    tmp = None
    try:
        tmp = _temporary(path, data)
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as err:
        raise AevbError(f"could not write {path} ({err.strerror or err}); "
                        "its previous version is kept") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_new(path, data: bytes) -> Path:
    """Create `path` holding `data`, all or nothing; AevbError if anything (a file, a folder, a
    symlink, even a dangling one) is already there or the write fails (nothing is left)."""
    path = Path(path)
    if os.path.lexists(path):
        raise AevbError(f"{path} exists; choose another file (nothing is overwritten)")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary(path, data)
        os.link(tmp, path)  # fails if anything appeared at `path` meanwhile: never replaces
        fsync_dir(path.parent)
    except FileExistsError:
        raise AevbError(f"{path} exists; choose another file (nothing is overwritten)") from None
    except OSError as err:
        raise AevbError(f"could not write {path} ({err.strerror or err}); nothing was "
                        "left behind") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def write_output(path, data: bytes, replace: bool = False) -> Path:
    """A user-named output: created new, or with `replace` (the user's --force) replacing
    what is there atomically (a symlink is replaced, not written through)."""
    if not replace:
        return write_new(path, data)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return Path(path)


def append_line(path, line: str) -> None:
    """Append one line durably, never through a symlink; AevbError where it cannot be
    written. A last line without its newline (cut by a kill) is ended first."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        why = "it is a symbolic link" if os.path.islink(path) else err.strerror or err
        raise AevbError(f"could not append to {path} ({why})") from None
    try:
        size = os.fstat(fd).st_size
        cut = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        data = (b"\n" if cut else b"") + line.encode() + b"\n"
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except OSError as err:
        raise AevbError(f"could not append to {path} ({err.strerror or err})") from None
    finally:
        os.close(fd)


def remove_stale_temporaries(folder, min_age_s: float = 0.0) -> list[Path]:
    """Delete temporary files of `atomic_write` in `folder` (left by a killed process) that are
    at least `min_age_s` old; call it while holding the folder's lock. Returns what went."""
    removed = []
    now = time.time()
    for p in Path(folder).glob(f".*{TEMP_MARK}*"):
        try:
            if p.is_file() and now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


class Busy(Exception):
    """The lock is held by another process."""


@contextmanager
def lock(path, wait: bool = False):
    """Hold an exclusive lock on the file `path` (created if missing) for the block; raises
    Busy at once if another process holds it and `wait` is False. The operating system drops
    the lock when its holder dies, so a killed process leaves none behind."""
    handle = open(path, "a+b")
    try:
        _acquire(handle, wait)
        yield
    finally:
        handle.close()  # closing the file releases the lock on every platform


def _acquire(handle, wait: bool) -> None:
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy from None
        return
    try:
        import msvcrt
    except ImportError:  # neither: run unlocked rather than not at all
        return
    handle.seek(0)
    while True:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return
        except OSError:
            if not wait:
                raise Busy from None
            time.sleep(0.1)
