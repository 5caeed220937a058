"""Class labels as users store them, checked, and the labelled subset of semi-supervised runs.

Labels are whole numbers 0 .. C-1, one per data point: the built-in datasets' label files,
`y` or `labels` in an .npz beside `x` (or `images`), or the sub-folder of each image in a folder
with one sub-folder per class (classes numbered in the sorted order of the sub-folders' names).
The number of classes C of a dataset is one more than its largest training label.

`--labels N` (TrainConfig.labels) keeps the labels of N training points, drawn balanced over
the classes as Kingma et al. (2014, section 4.1) do for MNIST, and treats the rest as
unlabelled: `balanced_subset`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AevbError

UNLABELLED = -1  # the label of a training point whose label is not used


def check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Class labels as int64 [N]: one whole non-negative number per data point."""
    labels = np.asarray(labels)
    if labels.ndim == 1 and labels.dtype.kind == "f" and np.isfinite(labels).all() \
            and (labels == np.round(labels)).all():
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or labels.dtype.kind not in "iub":
        raise AevbError(f"{where}: labels must be one whole number per data point, got "
                        f"dtype {labels.dtype} and shape {labels.shape}")
    labels = labels.astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise AevbError(f"{where}: labels must be 0 or more (classes 0 .. C-1), found "
                        f"{int(labels.min())}")
    return labels


def class_count(train_labels: torch.Tensor, where: str) -> int:
    """C, the number of classes: one more than the largest training label; at least two."""
    classes = int(train_labels.max()) + 1 if len(train_labels) else 0
    if classes < 2 or len(torch.unique(train_labels)) < 2:
        raise AevbError(f"{where}: the labels name only one class; conditioning needs two "
                        "or more")
    return classes


def check_range(labels: torch.Tensor, classes: int, where: str) -> None:
    """Labels of data scored by a model of `classes` classes must lie in 0 .. classes-1."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        bad = int(labels.max()) if int(labels.max()) >= classes else int(labels.min())
        raise AevbError(f"{where}: label {bad} is out of range: the model knows classes "
                        f"0 .. {classes - 1}")


def balanced_subset(labels: torch.Tensor, n: int, classes: int, seed: int) -> torch.Tensor:
    """Indices (sorted, int64) of n points of `labels` [N], as equal a number per class as the
    classes allow (n / C each, the first n mod C classes one more), drawn without replacement
    by a generator seeded with `seed`: the same indices for the same seed."""
    if not 1 <= n <= len(labels):
        raise AevbError(f"labels must be between 1 and the {len(labels)} training points, "
                        f"got {n}")
    if n < classes:
        raise AevbError(f"labels {n} is fewer than the {classes} classes: give at least one "
                        "label per class")
    counts = torch.bincount(labels, minlength=classes)
    want = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    short = [c for c in range(classes) if counts[c] < want[c]]
    if short:
        c = short[0]
        raise AevbError(f"labels {n}: class {c} has only {int(counts[c])} training points, "
                        f"fewer than the {want[c]} a balanced draw takes from it")
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(classes):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:want[c]]])
    return torch.sort(torch.cat(chosen)).values


def observed_labels(labels: torch.Tensor, keep: int | None, classes: int,
                    seed: int) -> torch.Tensor:
    """The training labels a run uses, [N] int64: `labels` where kept, UNLABELLED elsewhere;
    all of them when keep is None."""
    if keep is None:
        return labels.clone()
    out = torch.full_like(labels, UNLABELLED)
    idx = balanced_subset(labels, keep, classes, seed)
    out[idx] = labels[idx]
    return out


@dataclass(frozen=True)
class Observed:
    """The labels a run trains with: y [N] int64 for the training set (UNLABELLED where a
    label is not used), the number of classes C, and the labelled points' rows x [N_l, D]
    (for M2's classification term), with their spread [N_l, D] where the data's minibatches
    are draws around the rows (`data.Dataset.train_spread`; else None)."""

    y: torch.Tensor
    classes: int
    x: torch.Tensor
    spread: torch.Tensor | None = None

    @staticmethod
    def of(y: torch.Tensor, classes: int, x_train: torch.Tensor,
           spread: torch.Tensor | None = None) -> "Observed":
        known = y.to(x_train.device) >= 0
        return Observed(y.to(x_train.device), classes, x_train[known],
                        None if spread is None else spread[known])

    @property
    def labelled_y(self) -> torch.Tensor:
        return self.y[self.y >= 0]
