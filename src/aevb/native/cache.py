"""The folder the compiled library is kept in, checked before its code is trusted: the
library runs as this user, so a folder or file that another user could swap or write is
refused (docs/reliability.md)."""
from __future__ import annotations

import os
import stat
from pathlib import Path


def private(path: Path, directory: bool) -> str | None:
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


def unsafe_path(cache: Path) -> str | None:
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


def ready(cache: Path) -> str | None:
    """Create the private cache folder (0700) and check it and the path to it; None if
    usable."""
    try:
        problem = unsafe_path(cache)
        if problem:
            return problem
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.mkdir(mode=0o700, exist_ok=True)
        problem = unsafe_path(cache)  # again: nothing may have been swapped in meanwhile
        if problem:
            return problem
        if cache.is_symlink() and cache.resolve() != cache:
            return f"{cache} is a symbolic link (to {cache.resolve()}); make it a folder"
        return private(cache, directory=True)
    except OSError as err:
        return f"the cache folder {cache} is not usable ({err.strerror or err})"
