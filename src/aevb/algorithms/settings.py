"""The settings each algorithm adds to `aevb.TrainConfig`, one frozen dataclass per algorithm,
validated here. Free of torch: the CLI makes its flags from them (`--mcem-leapfrog` is
`TrainConfig.mcem.leapfrog`) before torch loads."""
from __future__ import annotations

import math
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


def label_rules(c, network_takes_labels: bool) -> list[tuple[bool, str]]:
    """TrainConfig's rules on a label y (conditional, classifier, labels, classifier-weight):
    (holds, the message if not) per rule; `network_takes_labels`: whether c.network's family
    conditions on a label (`networks.MLP.takes_labels`)."""
    return [
        (c.classifier is None or c.conditional,
         "a classifier q(y|x) is M2's, which conditions on the label: add --conditional true"),
        (c.classifier is None or all(1 <= h <= 2**31 for h in c.classifier),
         f"classifier sizes must be positive integers, got {c.classifier}"),
        (c.labels is None or c.classifier is not None,
         "labels N leaves the other points unlabelled, which only M2 (a classifier, "
         "--classifier 500) can use"),
        (c.labels is None or c.labels >= 1, f"labels must be at least 1, got {c.labels}"),
        (math.isfinite(c.classifier_weight) and c.classifier_weight >= 0,
         f"classifier-weight must be 0 or more, got {c.classifier_weight}"),
        (not c.conditional or network_takes_labels,
         f"a label conditions the mlp networks for now, not {c.network}"),
        (not c.conditional or not c.top_latent_dim,
         "a label conditions one stochastic layer for now, not two"),
        (c.features is None or c.conditional,
         "features (M1 + M2) are for a model with a label: add --conditional true and "
         "--classifier 500"),
        (c.features is not None or not (c.feature_draws or c.active_features),
         "feature-draws and active-features shape M1's features: they need --features RUN "
         "(M1 + M2)"),
        (not c.conditional or c.prior != "vamp",
         "a label does not combine with a VampPrior (its pseudo-inputs have no label)"),
    ]
