"""Checksums of a run directory: manifest.json records the SHA-256 of every file aevb writes
there, and loading verifies them, so a damaged file (bit rot, a partial copy, a bad disk) is
refused instead of giving NaN or, worse, plausible wrong numbers.

manifest.json: {"format": 1, "files": {name: [entry, ...]}}, entry = {"size": bytes,
"sha256": hex of those bytes, "append": bool}. A file matches when one of its entries does:
exactly, or for an append-only file (`append`, the .jsonl logs) when its first `size` bytes
do (lines appended after the last record are tolerated: a kill may fall between the append and
the manifest's update).

Replacing files keeps every state a kill can leave consistent: the manifest first accepts the
old and the new versions, then the files are replaced, then the manifest keeps only the new
versions. Runs written before manifests existed have none; they load with a note.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from .. import files
from ..errors import AevbError, AevbWarning
from .names import CONFIG, MANIFEST
from .names import MANIFEST_LOCK as _LOCK

_NOTED: set[str] = set()  # runs without a manifest already noted in this process


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(data: bytes, append: bool) -> dict:
    return {"size": len(data), "sha256": digest(data), "append": append}


def has_manifest(run_dir) -> bool:
    return (Path(run_dir) / MANIFEST).is_file()


def start(run_dir) -> None:
    """Give a new run directory an empty manifest: from now on its files are recorded."""
    files.atomic_write(Path(run_dir) / MANIFEST, _dump({}))


def is_manifest(run_dir) -> bool:
    """Whether run_dir holds a manifest that aevb wrote (not some other program's file)."""
    try:
        raw = json.loads((Path(run_dir) / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and raw.get("format") == 1 and isinstance(raw.get("files"), dict)


def _dump(table: dict) -> bytes:
    return (json.dumps({"format": 1, "files": table}, indent=1, sort_keys=True) + "\n").encode()


def _read(run_dir) -> dict | None:
    path = Path(run_dir) / MANIFEST
    try:
        raw = json.loads(path.read_text())
        table = raw["files"]
        if not isinstance(table, dict) or not all(
                isinstance(v, list) and all(isinstance(e, dict) and {"size", "sha256"} <= set(e)
                                            for e in v) for v in table.values()):
            raise TypeError
        return table
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise AevbError(f"{path}: damaged (not the manifest aevb writes); the run's files "
                        "cannot be verified") from None


def _update(run_dir, change) -> None:
    """Read, change and write the manifest under its lock (several processes may record)."""
    run_dir = Path(run_dir)
    with files.lock(run_dir / _LOCK, wait=True):
        table = _read(run_dir)
        if table is None:
            return
        change(table)
        files.atomic_write(run_dir / MANIFEST, _dump(table))


def write(run_dir, contents: dict[str, bytes]) -> None:
    """Replace the files `contents` names (relative to run_dir) atomically, and record them.

    Without a manifest (an old run) the files are written unrecorded."""
    run_dir = Path(run_dir)
    if not has_manifest(run_dir):
        for name, data in contents.items():
            files.atomic_write(run_dir / name, data)
        return
    new = {name: _entry(data, name.endswith(".jsonl")) for name, data in contents.items()}

    def accept_both(table):
        for name, entry in new.items():
            table[name] = [e for e in table.get(name, []) if e != entry][-1:] + [entry]

    _update(run_dir, accept_both)
    for name, data in contents.items():
        files.atomic_write(run_dir / name, data)

    def keep_new(table):
        for name, entry in new.items():
            table[name] = [entry]

    _update(run_dir, keep_new)


def append(run_dir, name: str, line: str) -> None:
    """Append a line to the log `name` and record its new contents."""
    run_dir = Path(run_dir)
    if has_manifest(run_dir):
        recorded, extra = read_log(run_dir, name)
        if extra:  # never recorded, so never made data by recording it now: dropped
            warnings.warn(AevbWarning(f"{run_dir / name}: {len(extra)} bytes past its last "
                                      "recorded record are dropped"), stacklevel=3)
            if recorded and not recorded.endswith(b"\n"):
                recorded += b"\n"
            write(run_dir, {name: recorded + line.encode() + b"\n"})
            return
    files.append_line(run_dir / name, line)
    if has_manifest(run_dir):
        record(run_dir, name, append=True)


def record(run_dir, name: str, append: bool = False) -> None:
    """Record the file `name` of run_dir as it is now (nothing without a manifest)."""
    path = Path(run_dir) / name
    if not has_manifest(run_dir):
        return
    entry = _entry(path.read_bytes(), append)

    def put(table):
        table[name] = [entry]

    _update(run_dir, put)


def verify(run_dir, names) -> None:
    """Check the named files of run_dir against the manifest; AevbError on a mismatch, a note
    (one warning) for a run written before manifests existed. A file the manifest does not
    list, or that does not exist, is left to its reader."""
    run_dir = Path(run_dir)
    table = _read(run_dir)
    if table is None:
        if str(run_dir.resolve()) in _NOTED:
            return
        _NOTED.add(str(run_dir.resolve()))
        warnings.warn(AevbWarning(f"{run_dir} carries no checksums (written before aevb "
                                  "recorded them): its files are not verified"), stacklevel=3)
        return
    for name in names:
        path = run_dir / name
        for attempt in range(2):  # a second look: a writer may have replaced it in between
            entries = (table if attempt == 0 else _read(run_dir) or {}).get(name)
            if not entries or not path.is_file():
                break
            if any(_matches(path.read_bytes(), e) for e in entries):
                break
        else:
            raise AevbError(f"{path}: SHA-256 differs from the one recorded when it was written "
                            "(a damaged or altered file); restore it from a copy")


def _matches(data: bytes, entry: dict) -> bool:
    size = entry["size"]
    if entry.get("append"):
        return len(data) >= size and digest(data[:size]) == entry["sha256"]
    return len(data) == size and digest(data) == entry["sha256"]


def read_log(run_dir, name: str) -> tuple[bytes, bytes]:
    """An append-only log of run_dir, verified: (the bytes the manifest records, what follows
    them). What follows was never recorded: a line appended just before a kill, or bytes
    someone added; callers show none of it as data. Without a manifest (an old run) or an
    entry for the log, everything is the first part. A missing log reads as empty."""
    run_dir = Path(run_dir)
    path = run_dir / name
    if path.is_symlink():
        raise AevbError(f"{path} is a symbolic link; a run's logs are never read or written "
                        "through one (replace it by the file itself)")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", b""
    except OSError as err:
        raise AevbError(f"{path}: cannot be read ({err.strerror or err})") from None
    verify(run_dir, [name])
    table = _read(run_dir)
    if table is None:  # a run from before manifests: nothing to tell data from additions
        return data, b""
    sizes = [e["size"] for e in table.get(name, ()) if _matches(data, e)]
    if not sizes:  # a log the manifest never listed: none of it was written by aevb
        return b"", data
    size = max(sizes)
    return data[:size], data[size:]


def run_of(path) -> Path | None:
    """The run directory that `path` (a file name) belongs to, if its folder is one: it holds
    a manifest or a config.json."""
    folder = Path(path).parent
    return folder if (folder / MANIFEST).exists() or (folder / CONFIG).exists() else None


def recorded_names(run_dir) -> list[str]:
    """The files the manifest lists (empty without a manifest)."""
    return sorted(_read(run_dir) or {})
