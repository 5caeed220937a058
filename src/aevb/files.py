"""Safe file writes and locks: what a run directory needs of the file system, on every platform.

- `atomic_write`: temporary file, fsync, rename, fsync of the directory, so a crash or a kill
  at any moment leaves either the old or the new version, and the rename itself survives a
  power cut. A write that fails (a full disk, a read-only folder) raises AevbError naming the
  file and leaves the previous version in place.
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


def atomic_write(path, data: bytes) -> None:
    """Replace `path` by `data` atomically and durably; AevbError where it cannot be written."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as err:
        raise AevbError(f"could not write {path} ({err.strerror or err}); "
                        "its previous version is kept") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def append_line(path, line: str) -> None:
    """Append one line durably; AevbError where it cannot be written."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise AevbError(f"could not append to {path} ({err.strerror or err})") from None


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
