"""What a run is built from its config: the settings the data decides, the optimizer, the
engine its steps take, the name of its run directory, and the config of a saved run.
"""
from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from pathlib import Path

import torch

from .. import algorithms
from ..compute import distributed, engine
from ..config import TrainConfig, saved_config
from ..data import BINARIZED_BY_DEFAULT, Dataset
from ..errors import AevbError
from ..model import VAE
from ..networks.heads import LIKELIHOODS


def resolve_data_settings(config: TrainConfig, data: Dataset) -> TrainConfig:
    """Fill in likelihood and binarize from the data where the config leaves them open."""
    binary = data.is_binary
    likelihood = config.likelihood
    if likelihood is None and config.features:
        likelihood = "normal"  # M1's means: real numbers of any range
    elif likelihood is None:
        likelihood = "bernoulli" if binary or data.name in BINARIZED_BY_DEFAULT else "gaussian"
    head = LIKELIHOODS[likelihood]
    binarize = config.binarize
    if binarize is None:
        binarize = head.binary and not binary
    if head.binary and not binary and not binarize:
        raise AevbError(f"the {type(head).__name__} likelihood needs binary data: enable "
                        "binarize or choose the gaussian likelihood")
    return dataclasses.replace(config, likelihood=likelihood, binarize=binarize)


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).stem if config.dataset.endswith((".npy", ".npz")) else \
        Path(config.dataset).name
    return Path("runs") / f"{stamp}-{name}-nz{config.latent_dim}"


def make_optimizer(config: TrainConfig, model: VAE, n_train: int,
                   native_step: bool = False) -> torch.optim.Optimizer:
    """The optimizer of `config`; for the native step, its Adagrad (the same state)."""
    decay = algorithms.get(config.algorithm).weight_decay(config, n_train)
    if native_step:
        return engine.backend("native").adagrad(model.parameters(), lr=config.lr,
                                                weight_decay=decay)
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[config.optimizer]
    # The fused kernels are ~30% faster on CPU. Torch has no fused Adagrad for CUDA, and says
    # so only at the first step, so the device decides here, not a failed construction.
    device = next(model.parameters()).device.type
    fused = device == "cpu" or (device == "cuda" and cls is torch.optim.Adam)
    try:
        return cls(model.parameters(), lr=config.lr, weight_decay=decay, fused=fused or None)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), lr=config.lr, weight_decay=decay)


def learning_rate(config: TrainConfig, samples: int, n_train: int, total: int) -> float:
    """The step size after `samples` of the run's `total` training samples.

    "iwae" is the schedule of Burda et al. (2015, section 5): stage i = 0, 1, ..., 7 lasts 3^i
    epochs at lr 10^(-i/7) (3,280 epochs in all), and the last stage's step size holds after
    it. "cosine" anneals lr to 0 over the run: lr (1 + cos(pi samples / total)) / 2, so a run
    of any length ends at a small step size. "constant" is lr throughout."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(samples / total, 1.0)))
    epochs, end = samples / n_train, 0
    for i in range(8):
        end += 3**i
        if epochs < end:
            break
    return config.lr * 10 ** (-i / 7)


def choose_engine(config: TrainConfig, model: VAE, device, total: int) -> engine.Choice:
    """How this run's steps run (`aevb.compute.engine.choose`); the same on every resume."""
    algorithm = algorithms.get(config.algorithm)
    if not algorithm.compiles:
        return engine.Choice("eager", f"{config.algorithm} steps run eagerly")
    why_not = algorithm.why_not_native(config)
    if why_not is None and distributed.world_size() > 1:
        why_not = "it runs in one process"
    if why_not is None:
        why_not = engine.backend("native").unavailable_reason(model, config.optimizer,
                                                              device)
    return engine.choose(config.engine, why_not, device,
                         math.ceil(total / config.batch_size), engine.compile_min_steps_of(model))


