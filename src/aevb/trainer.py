"""Training by stochastic gradient ascent on the minibatch SGVB bound (Algorithm 1, section 5).

The loop knows nothing about the networks: it draws a minibatch and noise, calls an objective
from `aevb.objectives`, and steps the optimizer. Every random number comes from seeded
generators whose states are checkpointed with the position in the data order, so a run that
is interrupted and resumed gives the same metrics as one that never stopped (bitwise on CPU).
Under torchrun each process trains on its share of every global minibatch, gradients are
averaged by DistributedDataParallel, and only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import math
import platform
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from . import __version__, baselines, checkpoint, distributed, fused, integrity, kernels, state_checks
from .config import DEFAULT_EPOCHS, TrainConfig
from .data import BINARIZED_BY_DEFAULT, Dataset, load_for_config, typical_range
from .distributions import binarize
from .errors import AevbError, AevbWarning, Interrupted
from .evaluate import SEED_OFFSETS, average_bound, evaluation_set, hmc_harmonic_log_likelihood
from .model import VAE, ModelConfig, initialize
from .objectives import ESTIMATORS, sleep_objective, wake_objective


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
    if eval_points == 1:
        return [total]
    start = max(1.0, total / 1e3)
    points = np.unique(np.round(np.geomspace(start, total, eval_points)).astype(np.int64))
    return [int(p) for p in points[:-1]] + [total]  # the end is always evaluated


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).stem if config.dataset.endswith((".npy", ".npz")) else \
        Path(config.dataset).name
    return Path("runs") / f"{stamp}-{name}-nz{config.latent_dim}"


def make_optimizer(config: TrainConfig, model: VAE, n_train: int) -> torch.optim.Optimizer:
    # The N(0, s^2 I) weight prior adds log p(theta) / N to the per-data-point bound (eq. 8
    # divided by N); its gradient -theta / (s^2 N) is exactly an L2 weight decay.
    decay = 0.0 if config.weight_prior_std is None else 1.0 / (config.weight_prior_std**2 * n_train)
    if config.optimizer == "adagrad" and config.fused:
        return fused.Adagrad(model.parameters(), lr=config.lr, weight_decay=decay,
                             compiled=config.kernels)
    cls = {"adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[config.optimizer]
    try:  # the fused kernels are ~30% faster on CPU; not every device/optimizer has them
        return cls(model.parameters(), lr=config.lr, weight_decay=decay, fused=True)
    except (RuntimeError, TypeError):
        return cls(model.parameters(), lr=config.lr, weight_decay=decay)


@dataclass
class Progress:
    """Where the loop stands; saved with every checkpoint."""

    samples: int = 0  # training data points evaluated so far (all processes together)
    epoch: int = 0  # completed passes over the training set
    position: int = 0  # index into this epoch's data order
    train_seconds: float = 0.0  # time spent in training steps, evaluation excluded
    wall_seconds: float = 0.0  # time since the run started, over all sessions


@dataclass
class _Run:
    """Everything the loop touches, built fresh by `train` or from a checkpoint by `resume`."""

    config: TrainConfig
    run_dir: Path
    data: Dataset
    model: VAE
    optimizer: torch.optim.Optimizer
    generators: dict  # "order": data order (shared by all processes), "noise": this process's
    total: int
    progress: Progress
    order: torch.Tensor | None = None  # the current epoch's permutation of the training set
    chains: baselines.Chains | None = None  # MCEM's persistent z per training point


def _setup(config: TrainConfig, data: Dataset, device, run_dir: Path) -> _Run:
    n_train = len(data.train)
    total = config.samples or int(round((config.epochs or DEFAULT_EPOCHS) * n_train))
    model = VAE(ModelConfig(data.shape, config.latent_dim, config.hidden, config.likelihood))
    initialize(model, config.init_std, torch.Generator().manual_seed(config.seed))
    model.to(device)
    rank = distributed.rank()
    generators = {
        "order": torch.Generator(device=device).manual_seed(config.seed),
        # Binarization and eps differ between processes, the data order does not.
        "noise": torch.Generator(device=device).manual_seed(config.seed + 1_000_003 * (rank + 1)),
    }
    chains = None
    if config.algorithm == "mcem":
        if distributed.world_size() > 1:
            raise AevbError("mcem keeps one chain per training point in one process; "
                            "run it without torchrun")
        chains = baselines.Chains.start(n_train, config.latent_dim, torch.Generator(
            device=device).manual_seed(config.seed + 2), device)
    return _Run(config, run_dir, data, model, make_optimizer(config, model, n_train),
                generators, total, Progress(), chains=chains)


def train(config: TrainConfig, *, progress: bool = True) -> Path:
    """Train a VAE as `config` says; returns the run directory holding its results."""
    device = distributed.setup(distributed.pick_device(config.device))
    if config.out:  # fail before the (possibly slow) data loading
        checkpoint.refuse_existing_run(Path(config.out))
    data = load_for_config(config)
    config = resolve_data_settings(config, data)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    config = dataclasses.replace(config, out=str(run_dir))
    run = _setup(config, data, device, run_dir)
    main = distributed.is_main()
    if main:
        checkpoint.refuse_existing_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.exclusive(run_dir, main):
        if main:
            # Again under the lock: another process may have made a run here since the check
            # above, and it must not be overwritten.
            checkpoint.refuse_existing_run(run_dir)
            integrity.start(run_dir)
            _write_run_info(run, data, device)
        return _loop(run, progress, fresh=True)


def _write_run_info(run: _Run, data: Dataset, device) -> None:
    config = run.config
    checkpoint.write_config(run.run_dir, {
        "config": config.to_dict(), "model": run.model.config.to_dict(),
        "data": {"name": data.name, "n_train": len(data.train), "n_test": len(data.test),
                 "shape": list(data.shape), "split_seed": config.seed,
                 "test_fraction": config.test_fraction,
                 "typical_range": typical_range(data.train)},
        "total_samples": run.total,
        "versions": {"aevb": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "device": str(device), "world_size": distributed.world_size(),
    })


def saved_config(info: dict) -> TrainConfig:
    """The TrainConfig in a run's config.json (as `checkpoint.read_config` returns it)."""
    # Runs from before aevb.fused (aevb.kernels) existed continue on the path they started on.
    return TrainConfig.from_dict({"fused": False, "kernels": False, **info["config"],
                                  "hidden": tuple(info["config"]["hidden"])})


def resume(run_dir, *, progress: bool = True) -> Path:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped."""
    run_dir = Path(run_dir)
    config = saved_config(checkpoint.read_config(run_dir))
    integrity.verify(run_dir, checkpoint.RUN_FILES)  # every file it will continue
    device = distributed.setup(distributed.pick_device(config.device))
    run = _setup(config, load_for_config(config), device, run_dir)
    with checkpoint.exclusive(run_dir, distributed.is_main()):
        return _resume(run, progress)


def _resume(run: _Run, progress: bool) -> Path:
    run_dir, device = run.run_dir, next(run.model.parameters()).device
    saved = checkpoint.load_training_state(run_dir, run.model, run.optimizer, run.generators,
                                           rank=distributed.rank())
    where, n_train = f"{run_dir}/{checkpoint.STATE}", len(run.data.train)
    state_checks.progress(where, saved["progress"], n_train, run.total)
    try:
        run.progress = Progress(**saved["progress"])
    except TypeError:
        raise AevbError(f"{where}: the progress record is damaged") from None
    if saved["order"] is not None:
        state_checks.order(where, saved["order"], n_train)
    run.order = saved["order"].to(device) if saved["order"] is not None else None
    if run.chains is not None:
        try:
            z, log_step = saved["extra"]["mcem.z"], saved["extra"]["mcem.log_step"]
        except KeyError:
            raise AevbError(f"{run_dir}: the checkpoint lacks MCEM's chains") from None
        state_checks.chains(where, z, log_step, n_train, run.config.latent_dim)
        run.chains = baselines.Chains(z.to(device), log_step.to(device))
    if run.progress.samples >= run.total:
        raise AevbError(f"{run_dir} has finished training ({run.total} samples); nothing to resume")
    if distributed.is_main():
        # Evaluations written after the checkpoint are made again on the way.
        checkpoint.truncate_metrics(run_dir, run.progress.samples)
    return _loop(run, progress, fresh=False)


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.signal = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class _ObjectiveModule(torch.nn.Module):
    """The objective as a module, only so DistributedDataParallel can hook its forward pass.

    For wake-sleep, `dream` = (z, x) fantasies add the sleep phase's objective."""

    def __init__(self, model: VAE, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, eps, dream=None):
        value = self.objective(self.model, x, eps)  # [N]
        if dream is not None:
            value = value + sleep_objective(self.model, *dream)
        return value


def _appendix_d(model, x: torch.Tensor, seed: int, use_encoder: bool, report,
                chunk: int = 100) -> float:
    """The mean appendix D estimate of log p(x) over the rows of x, in chunks of `chunk`
    points (each with its own seed), calling report(points done, points) after each."""
    values = []
    for start in range(0, len(x), chunk):
        report(start, len(x))
        values.append(hmc_harmonic_log_likelihood(model, x[start:start + chunk],
                                                  seed=seed + start, use_encoder=use_encoder))
    report(len(x), len(x))
    return float(torch.cat(values).double().mean())


def _loop(run: _Run, progress: bool, fresh: bool) -> Path:
    cfg, model, optimizer, p = run.config, run.model, run.optimizer, run.progress
    device = next(model.parameters()).device
    rank, world, main = distributed.rank(), distributed.world_size(), distributed.is_main()
    if cfg.batch_size < world:
        raise AevbError(f"batch size {cfg.batch_size} is smaller than the {world} processes")
    x_train = run.data.train.to(device)
    n_train = len(x_train)
    eval_train = evaluation_set(x_train, "train", cfg.seed, cfg.binarize)[:cfg.eval_examples]
    eval_test = evaluation_set(run.data.test.to(device), "test", cfg.seed, cfg.binarize)
    noise_seed = {split: cfg.seed + SEED_OFFSETS[split][1] for split in ("train", "test")}
    schedule = [s for s in eval_schedule(run.total, cfg.eval_points) if s > p.samples]
    wake_sleep, mcem = cfg.algorithm == "wake-sleep", cfg.algorithm == "mcem"
    objective = wake_objective if wake_sleep else ESTIMATORS[cfg.estimator]
    lib = kernels.load() if cfg.kernels else None
    if cfg.kernels and lib is None and device.type == "cpu":
        warnings.warn(AevbWarning(f"aevb.kernels unavailable ({kernels.unavailable_reason()}); "
                                  "training on PyTorch operations alone (slower, the same "
                                  "results up to rounding)"), stacklevel=2)
    # The same bound and gradients as autograd through `objective`, faster; with the compiled
    # kernels it also makes the optimizer's step (fast.updated).
    fast = fused.FusedStep(model, optimizer, compiled=cfg.kernels) \
        if (objective is ESTIMATORS["B"] and cfg.fused and world == 1
            and fused.supports(model)) else None
    step_fn = distributed.wrap(_ObjectiveModule(model, objective))
    session_start, wall_before = time.perf_counter(), p.wall_seconds

    def save():
        if main:
            p.wall_seconds = wall_before + time.perf_counter() - session_start
            extra = {"mcem.z": run.chains.z, "mcem.log_step": run.chains.log_step} \
                if mcem else None
            checkpoint.save_checkpoint(run.run_dir, model, optimizer, run.generators,
                                       dataclasses.asdict(p), run.order, extra)

    def evaluate_and_save():
        if main:
            model.eval()
            record = {"samples": p.samples, "epoch": p.samples / n_train}
            for split, x_eval in (("train", eval_train), ("test", eval_test)):
                # MCEM never trains q_phi(z|x), so it has no bound to report.
                record[f"{split}_elbo"] = None if mcem else \
                    average_bound(model, x_eval, noise_seed[split])
                if cfg.eval_likelihood:
                    record[f"{split}_log_likelihood"] = _appendix_d(
                        model, x_eval[:cfg.eval_likelihood], noise_seed[split], not mcem,
                        lambda done, n: bar.set_postfix_str(
                            f"appendix D estimate, {split}: {done}/{n} points", refresh=True))
            record["seconds"] = wall_before + time.perf_counter() - session_start
            record["samples_per_second"] = p.samples / p.train_seconds if p.train_seconds \
                else None
            model.train()
            bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise AevbError(f"the {bad[0].replace('_', ' ')} became {record[bad[0]]} at step "
                                f"{p.samples // cfg.batch_size} ({p.samples} samples); the last "
                                f"good checkpoint in {run.run_dir} is kept (try a smaller lr)")
            checkpoint.append_metrics(run.run_dir, record)
            save()
            shown = record["test_elbo"] if not mcem else record.get("test_log_likelihood")
            bar.set_postfix(test=f"{shown:.2f}" if shown is not None else "-",
                            samples_per_s=f"{p.samples / max(p.train_seconds, 1e-9):.0f}")

    def descend(loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        apply(loss)

    def apply(loss):  # every .grad holds d(loss)/d(parameter)
        if not torch.isfinite(loss):
            raise AevbError(f"the loss became {loss.item()} at step "
                            f"{p.samples // cfg.batch_size} ({p.samples} samples); the last "
                            f"good checkpoint in {run.run_dir} is kept (try a smaller lr)")
        optimizer.step()

    from tqdm import tqdm

    bar = tqdm(total=run.total, initial=p.samples, unit="sample", unit_scale=True,
               disable=not (progress and main), file=sys.stderr, dynamic_ncols=True)
    if fresh:
        evaluate_and_save()
    last_save = p.samples
    model.train()
    with _Interrupt() as interrupt:
        while p.samples < run.total:
            if run.order is None:
                run.order = torch.randperm(n_train, generator=run.generators["order"],
                                           device=device)
                p.position = 0
            t0 = time.perf_counter()
            # The global minibatch; this process takes every world-th point of it.
            size = min(cfg.batch_size, run.total - p.samples, n_train - p.position)
            idx = run.order[p.position:p.position + size]
            if world > 1:
                idx = idx[rank::world]
            x = binarize(x_train, run.generators["noise"], lib, idx) if cfg.binarize \
                else x_train[idx]
            if mcem:  # appendix E: move each point's chain, then fit theta to the new z
                z, _ = baselines.e_step(model, x, run.chains, idx, cfg.mcem_leapfrog,
                                        cfg.mcem_accept, run.generators["noise"])
                for _ in range(cfg.mcem_updates):
                    descend(-baselines.complete_log_likelihood(model, x, z).mean())
            else:
                eps = torch.randn(cfg.mc_samples, len(idx), cfg.latent_dim,
                                  generator=run.generators["noise"], device=device)
                # objectives.minibatch_estimate (eq. 8) divided by N: the mean bound per data
                # point, so step sizes do not scale with the dataset size.
                if fast is not None:  # fills .grad itself
                    bound = fast(x, eps)
                    if not fast.updated:  # (an update it made had a finite bound)
                        apply(-bound.mean())
                else:
                    dream = model.dream(len(idx), run.generators["noise"]) if wake_sleep \
                        else None
                    descend(-step_fn(x, eps, dream).mean())
            p.train_seconds += time.perf_counter() - t0
            p.samples += size
            p.position += size
            bar.update(size)
            if p.position >= n_train:
                p.epoch += 1
                run.order = None
            if schedule and p.samples >= schedule[0]:
                evaluate_and_save()
                last_save = p.samples
                schedule = [s for s in schedule if s > p.samples]
            elif p.samples - last_save >= cfg.checkpoint_every:
                save()
                last_save = p.samples
            if interrupt.signal is not None:
                save()
                bar.close()
                raise Interrupted(interrupt.signal,
                                  f"checkpoint saved after {p.samples} samples; continue with: "
                                  f"aevb train --resume {run.run_dir}")
    bar.close()
    distributed.check_replicas_identical(model)
    if main:
        from .report import write_figures, write_report

        write_figures(run.run_dir, run.data)
        write_report(run.run_dir)
    return run.run_dir
