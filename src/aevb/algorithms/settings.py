"""The settings each algorithm adds to `aevb.TrainConfig`, one frozen dataclass per algorithm,
validated here. Free of torch: the CLI makes its flags from them (`--mcem-leapfrog` is
`TrainConfig.mcem.leapfrog`) before torch loads."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import AevbError
from ..fields import check_types


@dataclass(frozen=True)
class McemConfig:
    """Monte Carlo EM (appendix E): the E-step's HMC transition and the M-step's updates."""

    leapfrog: int = 10  # MCEM: leapfrog steps of the E-step's HMC transition (appendix E)
    updates: int = 5  # MCEM: weight updates per E-step sample (appendix E)
    accept: float = 0.9  # MCEM: acceptance rate the HMC step size is tuned to

    def __post_init__(self):
        check_types(self, "mcem-")
        for ok, message in (
                (self.leapfrog >= 1, f"mcem-leapfrog must be at least 1, got {self.leapfrog}"),
                (self.updates >= 1, f"mcem-updates must be at least 1, got {self.updates}"),
                (0 < self.accept < 1, f"mcem-accept must lie in (0, 1), got {self.accept}")):
            if not ok:
                raise AevbError(message)
