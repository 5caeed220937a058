"""Whether a folder can take a new run, and the lock a run holds while it is trained:
nothing trained, and nothing of the user's, is ever overwritten."""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..errors import AevbError
from ..files import TEMP_MARK, Busy, lock, remove_stale_temporaries
from . import integrity
from .names import (CONFIG, FEATURES, FEATURES_PARTIAL, LOCK, MANIFEST, MANIFEST_LOCK, METRICS,
                    RUN_FILES, STATE, WEIGHTS)


def check_new_run_dir(run_dir) -> bool:
    """Raise unless run_dir can take a new run: it is absent, empty, or holds a run that
    stopped before its first checkpoint (nothing was trained; returns True: its files are to
    be replaced, under the run's lock). A run with a checkpoint and a folder holding anything
    that is not aevb's are refused: nothing trained, and nothing of the user's, is ever
    overwritten."""
    run_dir = Path(run_dir)
    if os.path.lexists(run_dir) and not run_dir.is_dir():
        raise AevbError(f"{run_dir} exists and is not a directory; choose another --out")
    if not run_dir.exists():
        return False
    names = {p.name for p in run_dir.iterdir() if TEMP_MARK not in p.name} - {LOCK,
                                                                            MANIFEST_LOCK}
    present = [name for name in RUN_FILES if name in names]
    if STATE in names or WEIGHTS in names:
        raise AevbError(f"{run_dir} already holds a run ({', '.join(present)}); "
                        "choose another --out")
    if not names:
        return False
    foreign = sorted(names - {CONFIG, METRICS, MANIFEST, FEATURES, FEATURES_PARTIAL})
    if CONFIG in names and not _is_aevb_config(run_dir):
        raise AevbError(f"{run_dir} already holds a run of something else ({CONFIG} is not an "
                        "aevb run's); choose another --out")
    if foreign or not (CONFIG in names or integrity.is_manifest(run_dir)):
        listed = ", ".join((foreign or sorted(names))[:5])
        raise AevbError(f"{run_dir} is not empty and is not an aevb run (it holds {listed}); "
                        "choose an empty or new folder for --out")
    return True


def _is_aevb_config(run_dir: Path) -> bool:
    try:
        info = json.loads((run_dir / CONFIG).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(info, dict) and isinstance(info.get("config"), dict) \
        and isinstance(info.get("model"), dict)


def clear_unstarted(run_dir) -> None:
    """Remove the files of a run that stopped before its first checkpoint (call under the
    run's lock, after `check_new_run_dir` returned True there)."""
    for name in (METRICS, CONFIG, MANIFEST):
        (Path(run_dir) / name).unlink(missing_ok=True)
    for name in (FEATURES, FEATURES_PARTIAL):  # M1's copy, taken again
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


@contextmanager
def exclusive(run_dir, active: bool = True, wait: bool = False):
    """Hold run_dir/.lock while training: a second process that tries to train or resume the
    same run gets an AevbError instead of interleaving checkpoints (wait=True: it waits its
    turn instead). The lock goes with the process that holds it, so a killed run leaves none
    behind; temporary files such a process left are removed once the lock is held.
    active=False: no lock (the non-writing ranks under torchrun)."""
    if not active:
        yield
        return
    try:
        with lock(Path(run_dir) / LOCK, wait=wait):
            remove_stale_temporaries(run_dir)
            yield
    except Busy:
        raise AevbError(f"{run_dir} is being trained by another process; wait for it to "
                        "finish or stop it") from None
