"""Training by stochastic gradient ascent on the minibatch SGVB bound (Algorithm 1, section 5).

The loop knows nothing about the networks: it draws a minibatch and noise, calls an objective
from `aevb.objectives`, and steps the optimizer. Every random number comes from one seeded
generator, so the same seed and config give the same metrics on the same machine.
"""
from __future__ import annotations

import dataclasses
import math
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from . import __version__, checkpoint
from .config import DEFAULT_EPOCHS, TrainConfig
from .data import BINARIZED_BY_DEFAULT, Dataset, load_dataset
from .errors import AevbError
from .model import VAE, ModelConfig, initialize
from .evaluate import SEED_OFFSETS, average_bound, evaluation_set
from .objectives import ESTIMATORS


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AevbError("device cuda requested but no CUDA GPU is available")
    return torch.device(name)


def resolve_data_settings(config: TrainConfig, data: Dataset) -> TrainConfig:
    """Fill in likelihood and binarize from the data where the config leaves them open."""
    binary = data.is_binary
    likelihood = config.likelihood
    if likelihood is None:
        likelihood = "bernoulli" if binary or data.name in BINARIZED_BY_DEFAULT else "gaussian"
    binarize = config.binarize
    if binarize is None:
        binarize = likelihood == "bernoulli" and not binary
    if likelihood == "bernoulli" and not binary and not binarize:
        raise AevbError("the Bernoulli likelihood needs binary data: enable binarize "
                        "or choose the gaussian likelihood")
    return dataclasses.replace(config, likelihood=likelihood, binarize=binarize)


def eval_schedule(total: int, eval_points: int) -> list[int]:
    """Log-spaced sample counts (over up to three decades, ending at `total`) for evaluation."""
    start = max(1.0, total / 1e3)
    points = np.unique(np.round(np.geomspace(start, total, eval_points)).astype(np.int64))
    return [int(p) for p in points]


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).stem if config.dataset.endswith((".npy", ".npz")) else \
        Path(config.dataset).name
    return Path("runs") / f"{stamp}-{name}-nz{config.latent_dim}"


def make_optimizer(config: TrainConfig, model: VAE, n_train: int) -> torch.optim.Optimizer:
    # The N(0, s^2 I) weight prior adds log p(theta) / N to the per-data-point bound (eq. 8
    # divided by N); its gradient -theta / (s^2 N) is exactly an L2 weight decay.
    decay = 0.0 if config.weight_prior_std is None else 1.0 / (config.weight_prior_std ** 2 * n_train)
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[config.optimizer]
    try:  # the fused kernels are ~30% faster on CPU; not every device/optimizer has them
        return cls(model.parameters(), lr=config.lr, weight_decay=decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), lr=config.lr, weight_decay=decay)


def train(config: TrainConfig, *, progress: bool = True) -> Path:
    """Train a VAE as `config` says; returns the run directory holding its results."""
    device = pick_device(config.device)
    if config.out:  # fail before the (possibly slow) data loading
        checkpoint.refuse_existing_run(Path(config.out))
    data = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                        test_fraction=config.test_fraction, seed=config.seed)
    config = resolve_data_settings(config, data)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    config = dataclasses.replace(config, out=str(run_dir))
    n_train = len(data.train)
    total = config.samples or int(round((config.epochs or DEFAULT_EPOCHS) * n_train))

    model_config = ModelConfig(data.shape, config.latent_dim, config.hidden, config.likelihood)
    model = VAE(model_config)
    initialize(model, config.init_std, torch.Generator().manual_seed(config.seed))
    model.to(device)
    optimizer = make_optimizer(config, model, n_train)
    objective = ESTIMATORS[config.estimator]

    checkpoint.prepare_run_dir(run_dir)
    checkpoint.write_config(run_dir, {
        "config": config.to_dict(), "model": model_config.to_dict(),
        "data": {"name": data.name, "n_train": n_train, "n_test": len(data.test),
                 "shape": list(data.shape), "split_seed": config.seed,
                 "test_fraction": config.test_fraction},
        "total_samples": total,
        "versions": {"aevb": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "device": str(device),
    })

    x_train, x_test = data.train.to(device), data.test.to(device)
    eval_train = evaluation_set(x_train, "train", config.seed, config.binarize)
    eval_train = eval_train[:config.eval_examples]
    eval_test = evaluation_set(x_test, "test", config.seed, config.binarize)
    noise_seed = {split: config.seed + SEED_OFFSETS[split][1] for split in ("train", "test")}
    gen = torch.Generator(device=device).manual_seed(config.seed)
    schedule = eval_schedule(total, config.eval_points)
    seen, epoch, train_time, start_wall = 0, 0, 0.0, time.perf_counter()

    def evaluate_and_save():
        model.eval()
        record = {"samples": seen, "epoch": seen / n_train,
                  "train_elbo": average_bound(model, eval_train, noise_seed["train"]),
                  "test_elbo": average_bound(model, eval_test, noise_seed["test"]),
                  "seconds": time.perf_counter() - start_wall,
                  "samples_per_second": seen / train_time if train_time else None}
        model.train()
        if not (math.isfinite(record["train_elbo"]) and math.isfinite(record["test_elbo"])):
            raise AevbError(f"the bound became {record['test_elbo']} after {seen} samples; "
                            f"the last good checkpoint in {run_dir} is kept (try a smaller lr)")
        checkpoint.append_metrics(run_dir, record)
        checkpoint.save_checkpoint(run_dir, model, optimizer, {"train": gen},
                                   {"samples": seen, "epoch": epoch, "finished": seen >= total})
        return record

    from tqdm import tqdm

    bar = tqdm(total=total, unit="sample", unit_scale=True, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    record = evaluate_and_save()
    next_eval = 0
    model.train()
    while seen < total:
        order = torch.randperm(n_train, generator=gen, device=device)
        for start in range(0, n_train, config.batch_size):
            if seen >= total:
                break
            t0 = time.perf_counter()
            idx = order[start:start + min(config.batch_size, total - seen)]
            x = x_train[idx]
            if config.binarize:
                x = torch.bernoulli(x, generator=gen)
            eps = torch.randn(config.mc_samples, len(idx), config.latent_dim,
                              generator=gen, device=device)
            loss = -objective(model, x, eps).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_time += time.perf_counter() - t0
            seen += len(idx)
            bar.update(len(idx))
            if seen >= schedule[next_eval]:
                record = evaluate_and_save()
                while next_eval < len(schedule) - 1 and schedule[next_eval] <= seen:
                    next_eval += 1
                bar.set_postfix(test_elbo=f"{record['test_elbo']:.2f}",
                                samples_per_s=f"{seen / train_time:.0f}")
        epoch += 1
    if record["samples"] != seen:
        evaluate_and_save()
    bar.close()
    from .report import write_figures, write_report

    write_figures(run_dir, data)
    write_report(run_dir)
    return run_dir
