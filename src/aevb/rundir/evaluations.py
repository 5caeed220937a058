"""A run directory's evaluation: its dataset with the run's split, the fixed test set every
evaluation sees, and `evaluate_run`, what `aevb evaluate RUN_DIR` computes.

The estimators themselves (bound, importance sampling, appendix D) are in `aevb.evaluation.evaluate`
and know nothing of run directories.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..evaluation.evaluate import METHODS, Evaluation, evaluate, evaluation_set
from ..networks.heads import LIKELIHOODS


def dataset_of_run(run_dir):
    """The dataset a run was trained on, with the same split."""
    from ..features import load_data
    from .checkpoint import read_config

    return load_data(read_config(run_dir)["config"], run_dir)


def test_set_of_run(run_dir, data=None) -> torch.Tensor:
    """The run's test split as every evaluation sees it (binarized with the run's fixed seed)."""
    from .checkpoint import read_config

    c = read_config(run_dir)["config"]
    data = data if data is not None else dataset_of_run(run_dir)
    return evaluation_set(data.test, "test", c["seed"], c["binarize"])


def evaluate_run(run_dir, *, split: str = "test", importance_samples: int = 5000,
                 batch_size: int = 100, data: str | None = None, device: str = "auto",
                 method: str = "importance", limit: int | None = None,
                 noise: str | None = None) -> Evaluation:
    """Evaluate a run directory's model on a split of its dataset, or on a user's file/folder.

    `data`: a .npy/.npz file or an image folder, scored whole (all its rows); it must have the
    model's data size. For a Bernoulli model, grey-level data is binarized with a fixed seed.
    `noise`: a .npy file of standard normal draws [K, N, J] for importance sampling instead of
    the seeded ones (to compare with an exported scorer given the same).
    """
    from .. import algorithms
    from ..compute.distributed import pick_device
    from ..errors import AevbError
    from .checkpoint import load, read_config

    _check_options(method, importance_samples, limit, batch_size)
    info = read_config(run_dir)
    config = info["config"]
    use_encoder = algorithms.get(config["algorithm"]).trains_encoder
    if not use_encoder and method != "hmc-harmonic":
        raise AevbError(f"{run_dir} was trained by MCEM, which leaves q(z|x) untrained: "
                        "evaluate it with --method hmc-harmonic")
    model = load(run_dir, pick_device(device))
    latent = model.config.latent_dim
    if method == "hmc-harmonic" and importance_samples < latent + 2:
        # Appendix D fits a Gaussian with full covariance to the draws: with fewer than
        # N_z + 2 of them it is degenerate and the estimate is meaningless (it came out at
        # millions of nats above 0 for K = 2, N_z = 20).
        raise AevbError(f"hmc-harmonic fits a full-covariance Gaussian to the K draws of each "
                        f"data point: it needs K >= N_z + 2 = {latent + 2} (the paper: 50 for "
                        f"N_z = 3), got --importance-samples {importance_samples}")
    y = None
    if data is not None:
        x, binarize, y = _user_data(data, run_dir, model, info)
        split = "data"
    else:
        if split not in ("train", "test"):
            raise AevbError(f"split must be train or test, got {split!r}")
        dataset = dataset_of_run(run_dir)
        x, binarize = (dataset.train if split == "train" else dataset.test), config["binarize"]
        y = dataset.train_labels if split == "train" else dataset.test_labels
    x = evaluation_set(x, split, config["seed"], binarize)[:limit]
    if model.config.classes:
        y = _labels_for(model, y, data or split, limit)
        if method != "importance" or noise is not None:
            raise AevbError(f"{run_dir} has a label: it is scored by importance sampling "
                            "(method importance), without --noise")
    if noise is not None and method != "importance":
        raise AevbError("--noise is for importance sampling (method importance)")
    eps = _read_noise(noise) if noise is not None else None
    if model.theta_posterior is not None and (method != "importance" or eps is not None):
        raise AevbError(f"{run_dir} has a posterior over theta (full-vb): it is scored by "
                        "importance sampling over (theta, z) pairs, without --noise")
    result = evaluate(model, x, split=split, importance_samples=importance_samples,
                      batch_size=batch_size, seed=config["seed"], method=method,
                      use_encoder=use_encoder, noise=eps,
                      n_data=info.get("data", {}).get("n_train"), y=y)
    _check_result(run_dir, model, result)
    return result


def _check_options(method: str, importance_samples: int, limit, batch_size: int) -> None:
    from ..errors import AevbError

    if method not in METHODS:
        raise AevbError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "hmc-harmonic" and importance_samples < 2:
        raise AevbError("hmc-harmonic needs at least 2 HMC draws per data point")
    if limit is not None and limit < 1:
        raise AevbError(f"limit must be at least 1, got {limit}")
    if importance_samples < 1:
        raise AevbError(f"importance samples must be at least 1, got {importance_samples}")
    if batch_size < 1:
        raise AevbError(f"batch size must be at least 1, got {batch_size}")


def _labels_for(model, y, where: str, limit) -> torch.Tensor | None:
    """The labels a model with a label is scored with: needed by a conditional VAE, checked
    against its classes; M2 takes data without labels (it sums them out)."""
    from ..data.labels import check_range
    from ..errors import AevbError

    if y is None:
        if model.classifier is None:
            raise AevbError(f"{where}: no labels, which this conditional model needs (an .npz "
                            "with y, or a folder with one sub-folder per class)")
        return None
    y = y[:limit]
    check_range(y, model.config.classes, where)
    return y


def _user_data(data: str, run_dir, model, info: dict) -> tuple[torch.Tensor, bool,
                                                                 torch.Tensor | None]:
    """A user's file or folder as rows [N, D] of the model's size, whether to binarize it
    (grey levels for a Bernoulli model) and its labels (None where it has none); a warning
    where it lies outside the training data's range. An M1 + M2 model scores M1's means of
    the data (`aevb.features`)."""
    from ..data import outside_range, read_labelled_user_data
    from ..errors import AevbError, AevbWarning
    from ..features import of_run
    from ..networks import NETWORKS

    x, shape, labels = read_labelled_user_data(data)
    m1 = of_run(run_dir)
    if m1 is not None:
        if x.shape[1] != m1.config.data_dim:
            raise AevbError(f"{data}: data points have {x.shape[1]} values, this model's M1 "
                            f"expects {m1.config.data_dim} (shape {list(m1.config.data_shape)})")
        return m1.means(x), False, labels
    want = tuple(model.config.data_shape)
    flat_ok = NETWORKS[model.config.network].takes_flat_data and len(shape) == 1
    if x.shape[1] != model.config.data_dim:
        raise AevbError(f"{data}: data points have {x.shape[1]} values, the model expects "
                        f"{model.config.data_dim} (shape {list(want)})")
    if shape != want and not flat_ok:
        raise AevbError(f"{data}: data points of shape {list(shape)}, the model expects "
                        f"{model.config.data_dim} values of shape {list(want)}")
    typical = info.get("data", {}).get("typical_range")
    warning = outside_range(x, typical) if typical else None
    if warning:
        warnings.warn(AevbWarning(f"{data}: {warning}"), stacklevel=3)
    is_binary = bool(((x == 0) | (x == 1)).all())
    return x, LIKELIHOODS[model.config.likelihood].binary and not is_binary, labels


def _read_noise(noise: str) -> torch.Tensor:
    """Standard normal draws [K, N, J] from a .npy file, checked."""
    from ..errors import AevbError

    try:
        raw = np.load(noise, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise AevbError(f"{noise}: not a readable .npy array ({err})") from None
    if not isinstance(raw, np.ndarray) or raw.dtype.kind not in "fiu":
        raise AevbError(f"{noise}: expected a .npy array of numbers, got "
                        f"{getattr(raw, 'dtype', type(raw).__name__)}")
    eps = torch.from_numpy(raw.astype(np.float32))
    if not torch.isfinite(eps).all():
        raise AevbError(f"{noise}: holds NaN or infinite values; the noise must be "
                        "standard normal draws")
    return eps


def _check_result(run_dir, model, result: Evaluation) -> None:
    """Non-finite estimates, and log p(x) > 0 for binary data, are errors, never results."""
    from ..errors import AevbError

    bad = int((~np.isfinite(result.per_example)).sum())
    if bad or (result.elbo is not None and not math.isfinite(result.elbo)):
        raise AevbError(f"{run_dir}: the evaluation gave non-finite values ({bad} of "
                        f"{result.n} log-likelihoods, bound {result.elbo}): the model's weights "
                        "are damaged or diverged")
    if LIKELIHOODS[model.config.likelihood].binary:
        # p(x) <= 1 for binary data: an estimate above 0 nats is impossible, never a result.
        worst = float(result.per_example.max())
        if worst > 1e-3 or (result.elbo is not None and result.elbo > 1e-3):
            raise AevbError(f"{run_dir}: the {result.method} estimate gave log p(x) = "
                            f"{max(worst, result.elbo or -1):.4g} nats for binary data, where "
                            "log p(x) <= 0: the estimate is not valid with these settings "
                            "(more --importance-samples)")
