"""Datasets: the known ones and the user's, as tensors with a seeded train/test split.
Where files are found is `sources`, how each format is read `formats`.

Every dataset becomes a `Dataset` of float32 tensors with values in [0, 1], one flattened data
point per row. Files of the known datasets are looked up under --data-dir, then $AEVB_DATA,
then ~/.cache/aevb, always with the layout of SOURCES.md (mnist/, fashion_mnist/,
binarized_mnist/, frey/, original file names) and verified by SHA-256; missing ones are
downloaded into the cache with pooch.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import AevbError
from .formats import (binary_uint8, read_amat, read_array, read_frey, read_idx, read_image_folder,
                      read_labelled_folder)
from .sources import (BINARIZED_FILES, FASHION_FILES, FREY_FILE, MNIST_FILES, RemoteFile, locate,
                      search_dirs, sha256_of)

__all__ = ["Dataset", "RemoteFile", "locate", "search_dirs", "sha256_of", "read_idx",
           "read_amat", "read_frey", "read_array", "read_image_folder", "read_labelled_folder",
           "split_indices", "load_dataset", "load_user_data", "read_user_data",
           "read_labelled_user_data", "load_for_config",
           "typical_range", "outside_range", "DATASETS", "BINARIZED_BY_DEFAULT",
           "MNIST_FILES", "FASHION_FILES", "BINARIZED_FILES", "FREY_FILE"]


@dataclass(frozen=True)
class Dataset:
    """train [N, D] and test [M, D] float32 in [0, 1]; labels int64 or None. Where
    train_spread [N, D] is set, a training minibatch is not the rows of train but a draw
    x ~ N(train, diag(train_spread^2)) per row (M1 + M2's feature draws, `aevb.features`);
    evaluations read train itself."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...]
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    train_spread: torch.Tensor | None = None

    @property
    def is_binary(self) -> bool:
        """True when every value is exactly 0 or 1 (the Bernoulli decoder needs no binarizing)."""
        return all(bool(((t == 0) | (t == 1)).all()) for t in (self.train, self.test))


def _to_tensor(images: np.ndarray, scale: float | None = None) -> torch.Tensor:
    """uint8 or float [N, ...] -> float32 [N, D] in [0, 1]. uint8 grey levels are divided by
    255, except uint8 that holds only 0 and 1, which is binary and kept as it is; `scale`
    (255.0 or 1.0) overrides that decision, made once for a whole array before it is split."""
    with warnings.catch_warnings():  # read-only arrays (np.frombuffer) are only read here
        warnings.simplefilter("ignore", UserWarning)
        flat = torch.from_numpy(np.ascontiguousarray(images.reshape(images.shape[0], -1)))
    if images.dtype != np.uint8:
        return flat.to(torch.float32)
    if scale is None:
        scale = 1.0 if binary_uint8(images) else 255.0
    out = flat.to(torch.float32)  # one float copy, scaled in place
    return out.div_(scale) if scale != 1.0 else out


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of range(n): (train, test) indices, reproducible from the seed."""
    if not 0 < test_fraction < 1:
        raise AevbError(f"test fraction must lie strictly between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    if n_test >= n:
        raise AevbError(f"only {n} data points: too few to hold out a test set")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _split(name, images, labels, test_fraction, seed) -> Dataset:
    train, test = split_indices(len(images), test_fraction, seed)
    scale = 1.0 if images.dtype != np.uint8 or binary_uint8(images) else 255.0
    lab = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if lab is not None and len(lab) != len(images):
        raise AevbError(f"{name}: {len(lab)} labels for {len(images)} data points")
    return Dataset(name, _to_tensor(images[train], scale), _to_tensor(images[test], scale),
                   tuple(images.shape[1:]),
                   None if lab is None else lab[train], None if lab is None else lab[test])


def _load_idx_pair(name, files, data_dir, download) -> Dataset:
    def get(key):
        return read_idx(locate(files[key], data_dir, download))

    train, test = get("train-images-idx3-ubyte.gz"), get("t10k-images-idx3-ubyte.gz")
    train_y, test_y = get("train-labels-idx1-ubyte.gz"), get("t10k-labels-idx1-ubyte.gz")
    if train.ndim != 3 or test.ndim != 3 or len(train_y) != len(train) or len(test_y) != len(test):
        raise AevbError(f"{name}: image and label files do not match")
    return Dataset(name, _to_tensor(train, 255.0), _to_tensor(test, 255.0), tuple(train.shape[1:]),
                   torch.from_numpy(train_y.astype(np.int64)),
                   torch.from_numpy(test_y.astype(np.int64)))


def load_dataset(name: str, *, data_dir=None, download: bool = True,
                 test_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """A dataset by name, or a user's own .npy/.npz file or image folder by path.

    mnist, fashion-mnist: the original 60,000/10,000 split. binarized-mnist: the 50,000 train
    and 10,000 test rows (the 10,000 validation rows are left out). frey-face, digits and user
    data: a random split with `test_fraction` held out, fixed by `seed`.
    """
    if name == "mnist":
        return _load_idx_pair(name, MNIST_FILES, data_dir, download)
    if name == "fashion-mnist":
        return _load_idx_pair(name, FASHION_FILES, data_dir, download)
    if name == "binarized-mnist":
        train, test = (read_amat(locate(BINARIZED_FILES[s], data_dir, download))
                       for s in ("train", "test"))
        return Dataset(name, torch.from_numpy(train), torch.from_numpy(test), (28, 28))
    if name == "frey-face":
        return _split(name, read_frey(locate(FREY_FILE, data_dir, download)), None,
                      test_fraction, seed)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()  # bundled with scikit-learn: no file, no network
        images = (bunch.images / 16.0).astype(np.float32)
        return _split(name, images, bunch.target, test_fraction, seed)
    path = Path(name)
    if path.is_dir():
        return _split(str(path), *read_labelled_folder(path), test_fraction, seed)
    if path.suffix in (".npy", ".npz"):
        if not path.is_file():
            raise AevbError(f"{path}: no such file")
        images, labels = read_array(path)
        return _split(str(path), images, labels, test_fraction, seed)
    raise AevbError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                    "or give a .npy/.npz file or a folder of images")


def load_user_data(path: str) -> torch.Tensor:
    """All rows of a user's .npy/.npz file or image folder as float32 [N, D] in [0, 1], by the
    same rules as training data (uint8 holding only 0 and 1 is binary)."""
    return read_user_data(path)[0]


def read_user_data(path: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`load_user_data` and the shape of one data point as stored ((D,), (H, W), (3, H, W))."""
    return read_labelled_user_data(path)[:2]


def read_labelled_user_data(path: str) -> tuple[torch.Tensor, tuple[int, ...],
                                                torch.Tensor | None]:
    """`read_user_data` and the file's labels (int64 [N]; None where it has none): an .npz's
    `y` or `labels`, or the class sub-folders of an image folder (`data.labels`)."""
    p = Path(path)
    if p.is_dir():
        images, labels = read_labelled_folder(p)
    elif p.suffix in (".npy", ".npz") and p.is_file():
        images, labels = read_array(p)
    else:
        raise AevbError(f"{path}: no such .npy/.npz file or image folder")
    if labels is not None and len(labels) != len(images):
        raise AevbError(f"{path}: {len(labels)} labels for {len(images)} data points")
    return (_to_tensor(images), tuple(images.shape[1:]),
            None if labels is None else torch.from_numpy(labels))


def load_for_config(config) -> Dataset:
    """The dataset (and split) a TrainConfig or a run's config.json section names."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
    data = load_dataset(get("dataset"), data_dir=get("data_dir"), download=get("download"),
                        test_fraction=get("test_fraction"), seed=get("seed"))
    n = get("train_examples")  # absent from configs written before the field existed
    if n is not None:
        if n > len(data.train):
            raise AevbError(f"train-examples {n} exceeds the {len(data.train)} training points "
                            f"of {data.name}")
        labels = data.train_labels[:n] if data.train_labels is not None else None
        data = dataclasses.replace(data, train=data.train[:n], train_labels=labels)
    return data


def typical_range(x: torch.Tensor) -> list[float]:
    """The 0.1% and 99.9% quantiles of the data points' mean values (x [N, D] in [0, 1]):
    recorded with a model, so that data scored later can be compared with what it learned."""
    means = x.double().mean(1)
    return [float(torch.quantile(means, 0.001)), float(torch.quantile(means, 0.999))]


def outside_range(x: torch.Tensor, typical: list[float]) -> str | None:
    """A warning if most points of x [N, D] have a mean value far outside `typical` (from
    `typical_range` of the training data): wrongly scaled data, e.g. binary images stored as
    0/255 read as grey levels, or 0/1 values divided by 255. None if x looks like it."""
    lo, hi = typical
    means = x.double().mean(1)
    # Far: a third of the lowest typical mean, or a third as far from 1 as the highest.
    outside = float(((means < lo / 3) | (1 - means < (1 - hi) / 3)).double().mean())
    if outside <= 0.5:
        return None
    return (f"{outside:.0%} of the data points have a mean value far outside the training "
            f"data's range [{lo:.4g}, {hi:.4g}] (median {float(means.median()):.4g}): check "
            "how the data is scaled (uint8 grey levels 0..255, uint8 binary 0/1, or float "
            "in [0, 1])")


DATASETS = ("mnist", "fashion-mnist", "binarized-mnist", "frey-face", "digits")
# Grey-level datasets modelled with the Bernoulli decoder on dynamically binarized batches.
BINARIZED_BY_DEFAULT = ("mnist", "fashion-mnist", "digits")
