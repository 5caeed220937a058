"""Sharing the cores with other processes: as many threads as the machine has cores to spare
(the measurements: docs/performance.md, "Sharing the cores").

OpenMP's threads spin while they wait for each other. Alone that is the fastest way to run
a step made of many small products, but two processes that each spin on every core run at a
fraction of one alone, since a thread spins while the one it waits for is not running. Waiting
passively instead (OMP_WAIT_POLICY=PASSIVE) costs a quarter of the speed alone. So aevb keeps
OpenMP's spinning and changes the number of threads: `Sharing.tick()`, called between steps,
reads every INTERVAL seconds how much CPU time went to other processes (Linux: /proc/stat
and this process's own CPU time) and sets torch's threads to the cores left over, at least
one and at most the number it started with.

The number of threads does not change the results (the products are MKL's in its strict
reproducible mode, and every sum of the native step and of torch's operations at these sizes
runs in an order that does not depend on it: tests/test_threads.py). torch.compile's kernels
keep the thread count they were compiled for; their products follow the setting.

The user's choice comes first: with OMP_NUM_THREADS set, or AEVB_THREADS set (a number: that
many threads; "fixed": torch's default), the count never changes.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

INTERVAL = 0.5  # seconds between looks at the machine's load
ENV = "AEVB_THREADS"


@dataclass(frozen=True)
class Load:
    """CPU time over one interval, in cores (seconds of CPU per second of wall time)."""
    cores: int     # the machine's CPUs
    idle: float    # unused, summed over the CPUs
    own: float     # this process's threads


def spare_cores(load: Load, most: int) -> int:
    """The threads to run: the cores that other processes left over, rounded, in [1, most]."""
    others = max(0.0, load.cores - load.idle - load.own)
    return max(1, min(most, round(load.cores - others)))


def user_choice(environ=os.environ) -> int | str | None:
    """The user's fixed count (an int), "fixed" (torch's default, unchanged), or None: adapt."""
    if environ.get("OMP_NUM_THREADS"):
        return "fixed"
    value = environ.get(ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value == "fixed":
        return "fixed"
    if value.isdigit() and int(value) > 0:
        return int(value)
    from ..errors import AevbError

    raise AevbError(f"{ENV} must be auto, fixed or a number of threads, got {value!r}")


def _cpu_times() -> tuple[int, float, float] | None:
    """(CPUs, idle seconds summed over them, all seconds summed over them) from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    fields = [float(v) for v in lines[0].split()[1:9]]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return cpus, fields[3] + fields[4], sum(fields)


class Sharing:
    """Between steps, `tick()` sets torch's threads to the machine's spare cores; a context
    manager, which leaves the count it found. Nested uses (an evaluation inside a training)
    share the count the outermost one found."""

    _most: int | None = None  # torch's threads when the first one began
    _depth = 0

    def __init__(self, read=None, clock=time.monotonic, own=time.process_time):
        self._read, self._clock, self._own = read or _cpu_times, clock, own

    def __enter__(self) -> "Sharing":
        import torch

        self._torch = torch
        choice = user_choice()
        if isinstance(choice, int) and Sharing._depth == 0:
            torch.set_num_threads(choice)
        if Sharing._depth == 0:
            Sharing._most = torch.get_num_threads()
        Sharing._depth += 1
        self.on = choice is None and Sharing._most > 1 and self._read() is not None
        self._last = self._sample() if self.on else None
        return self

    def __exit__(self, *exc) -> None:
        Sharing._depth -= 1
        if self.on and Sharing._depth == 0 and self._torch.get_num_threads() != Sharing._most:
            self._torch.set_num_threads(Sharing._most)

    def _sample(self):
        return self._clock(), self._own(), self._read()

    def tick(self) -> None:
        if not self.on or self._clock() - self._last[0] < INTERVAL:
            return
        now = self._sample()
        (t0, own0, (cpus, idle0, all0)), (t1, own1, (_, idle1, all1)) = self._last, now
        self._last = now
        if all1 <= all0 or t1 <= t0:
            return
        load = Load(cpus, cpus * (idle1 - idle0) / (all1 - all0), (own1 - own0) / (t1 - t0))
        threads = spare_cores(load, Sharing._most)
        if threads != self._torch.get_num_threads():
            self._torch.set_num_threads(threads)
