"""The run directory's two logs, metrics.jsonl (training) and evaluations.jsonl (`aevb
evaluate`): appended one JSON record at a time and read back verified against the manifest."""
from __future__ import annotations

import json
from pathlib import Path

from . import integrity
from .names import EVALUATIONS, METRICS


def append_metrics(run_dir: Path, record: dict) -> None:
    append_jsonl(Path(run_dir) / METRICS, record)


def append_jsonl(path: Path, record: dict) -> None:
    """One JSON line appended to a log in a run directory (and recorded in its manifest)."""
    path = Path(path)
    integrity.append(path.parent, path.name, json.dumps(record))


def read_log(run_dir, name: str, required: tuple[str, ...] = ()) -> list[dict]:
    """The records of a run's JSONL log (metrics.jsonl, evaluations.jsonl), verified against
    the manifest. Only what the manifest records is data: a line cut short by a kill is
    skipped, and anything appended past the recorded part is ignored with one warning. A
    record that is not a JSON object holding the `required` keys is skipped the same way."""
    import warnings

    from ..errors import AevbWarning

    recorded, extra = integrity.read_log(run_dir, name)
    records, skipped = [], 0
    for line in recorded.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and all(k in record for k in required):
            records.append(record)
        else:  # one is a line cut by a kill (ended by the next append); more is damage
            skipped += 1
    if b"\n" in extra:
        warnings.warn(AevbWarning(f"{Path(run_dir) / name}: {len(extra)} bytes past the last "
                                  "recorded record are ignored (not written by aevb, or cut "
                                  "off by a kill)"), stacklevel=2)
    if skipped > 1:
        warnings.warn(AevbWarning(f"{Path(run_dir) / name}: {skipped} records that are not "
                                  "aevb's are ignored"), stacklevel=2)
    return records


def read_metrics(run_dir) -> list[dict]:
    """The evaluation records of metrics.jsonl (`read_log`)."""
    return read_log(run_dir, METRICS, ("samples", "epoch", "train_elbo", "test_elbo"))


def read_evaluations(run_dir) -> list[dict]:
    """The records `aevb evaluate` appended to evaluations.jsonl (`read_log`), those whose
    values have the types it writes."""
    def number(v, none=False):
        return (v is None and none) or (isinstance(v, (int, float)) and not isinstance(v, bool))

    return [e for e in read_log(run_dir, EVALUATIONS, ("split", "n", "elbo", "log_likelihood",
                                                       "importance_samples"))
            if isinstance(e["split"], str) and number(e["n"]) and number(e["elbo"], True)
            and number(e["log_likelihood"]) and number(e["importance_samples"])
            and isinstance(e.get("kl_per_dimension") or [], list)
            and isinstance(e.get("posterior_std") or [], list)]


def truncate_metrics(run_dir, samples: int) -> None:
    """Drop records made after the checkpoint at `samples` (they will be made again)."""
    kept = [r for r in read_metrics(run_dir) if r["samples"] <= samples]
    integrity.write(run_dir, {METRICS: "".join(json.dumps(r) + "\n" for r in kept).encode()})
