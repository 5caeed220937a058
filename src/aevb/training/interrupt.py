"""SIGINT and SIGTERM while a run is made: a stop never cuts a step or a file in half, and
one line says what was kept."""
from __future__ import annotations

import signal
from pathlib import Path

from ..errors import Interrupted


class Stop(BaseException):
    """SIGINT or SIGTERM outside the training steps: raised at once (a BaseException, so that
    no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Interrupt:
    """SIGINT/SIGTERM while a run is made. During the steps a flag, which the loop checks
    between steps (a step is never cut in half); elsewhere (data loading, evaluations, the
    end-of-run figures) `Stop` at once. It knows where the run stands, so that the one line
    printed says what was kept."""

    def __init__(self):
        self.signal = None
        self.previous = {}
        self.immediate = True
        self.run_dir: Path | None = None  # once the run directory is made
        self.saved: int | None = None  # samples of the last checkpoint written
        self.finished = False  # training done; the end-of-run outputs are being written
        self.raised = False  # a Stop was raised into the running code

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum
        if self.immediate:
            self.raised = True
            raise Stop(signum)

    def __exit__(self, kind, value, traceback):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        # A Stop raised inside an import can leave a module half-made, and the code that
        # catches it then fails otherwise (a RecursionError in numpy's __getattr__): after a
        # Stop, any error is that stop.
        if kind is Stop or (self.raised and kind is not None and issubclass(kind, Exception)
                            and not issubclass(kind, Interrupted)):
            raise Interrupted(self.signal, self.kept()) from None

    def kept(self) -> str:
        """What a stop now leaves, in one line."""
        if self.run_dir is None:
            return "stopped before the run directory was made; nothing was written"
        if self.saved is None:
            return (f"stopped before the first checkpoint: nothing was trained; the same "
                    f"command starts {self.run_dir} again")
        if self.finished:
            return (f"training had finished ({self.saved} samples, checkpoint kept); the "
                    f"figures and report may be incomplete: aevb report {self.run_dir}")
        return (f"checkpoint saved after {self.saved} samples; continue with: "
                f"aevb train --resume {self.run_dir}")
