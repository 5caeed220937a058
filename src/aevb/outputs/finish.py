"""What a finished run leaves for people: the hook the training loop calls at its end."""
from __future__ import annotations

from ..data import Dataset
from ..rundir.checkpoint import load
from .explorer import run_unsupported_reason, write_explorer
from .report import write_figures, write_report


def write_outputs(run_dir, data: Dataset | None = None) -> None:
    """The figures, the explorer page (for models it runs) and report.html of a run."""
    write_figures(run_dir, data)
    if run_unsupported_reason(run_dir, load(run_dir)) is None:
        write_explorer(run_dir, data=data)
    write_report(run_dir)
