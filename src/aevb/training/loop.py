"""Algorithm 1's loop (section 3): minibatches in a seeded order handed to the algorithm's
step, and the hooks it calls between steps (evaluations at log-spaced points, checkpoints,
the step-size schedule, the stop check). It knows nothing about the networks or the
algorithm; `aevb.training.trainer` builds what it runs. Every random number comes from seeded
generators whose states are checkpointed with the position in the data order, so a run that
is interrupted and resumed gives the same metrics as one that never stopped (bitwise on CPU).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import algorithms
from ..algorithms.base import NonFinite
from ..compute import distributed, engine, threads
from ..compute.engine import Choice
from ..config import TrainConfig
from ..data import Dataset
from ..data.labels import Observed
from ..errors import AevbError, AevbWarning, Interrupted
from ..evaluation.evaluate import SEED_OFFSETS, evaluation_set, hmc_harmonic_log_likelihood
from ..maths.distributions import binarize, draw_around
from ..model import VAE
from ..rundir import checkpoint, logs
from .build import learning_rate
from .interrupt import Interrupt, Stop


def eval_schedule(total: int, eval_points: int) -> list[int]:
    """Log-spaced sample counts (over up to three decades, ending at `total`) for evaluation."""
    if eval_points == 1:
        return [total]
    start = max(1.0, total / 1e3)
    points = np.unique(np.round(np.geomspace(start, total, eval_points)).astype(np.int64))
    return [int(p) for p in points[:-1]] + [total]  # the end is always evaluated


@dataclass
class Progress:
    """Where the loop stands; saved with every checkpoint."""

    samples: int = 0  # training data points evaluated so far (all processes together)
    epoch: int = 0  # completed passes over the training set
    position: int = 0  # index into this epoch's data order
    train_seconds: float = 0.0  # time spent in training steps, evaluation excluded
    wall_seconds: float = 0.0  # time since the run started, over all sessions


@dataclass
class Run:
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
    state: object = None  # the algorithm's own state (MCEM's chains), if it keeps one
    engine: Choice | None = None  # how the steps run, and why
    labels: torch.Tensor | None = None  # training labels [N] a model with a label uses (-1: none)

    @property
    def algorithm(self):
        return algorithms.get(self.config.algorithm)


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


def _binarizer(cfg: TrainConfig, device: torch.device):
    """The minibatches' binarization: the native draws where asked for and built (the same
    bits as PyTorch's), with one warning where they were asked for on a CPU but cannot be
    had."""
    if not (cfg.kernels and cfg.binarize):
        return binarize
    native = engine.backend("native")
    draw = native.binarizer()
    if draw is None and device.type == "cpu":
        warnings.warn(AevbWarning(f"aevb.native unavailable ({native.available()}); training "
                                  "on PyTorch operations alone (the same results up to "
                                  "rounding)"), stacklevel=3)
    return draw or binarize


def save(run: Run, wall_seconds: float) -> None:
    """A checkpoint of the run as it stands (rank 0 only)."""
    run.progress.wall_seconds = wall_seconds
    extra = run.algorithm.state_tensors(run.state) if run.state is not None else None
    checkpoint.save_checkpoint(run.run_dir, run.model, run.optimizer, run.generators,
                               dataclasses.asdict(run.progress), run.order, extra)


def _evaluation(run: Run, eval_sets: dict, report) -> dict:
    """One metrics record: the bound (and the appendix D estimate where asked) on the fixed
    train and test evaluation sets; `report(text)` shows progress of the slow parts."""
    cfg, model, p, algorithm = run.config, run.model, run.progress, run.algorithm
    model.eval()
    record = {"samples": p.samples, "epoch": p.samples / len(run.data.train)}
    for split, (x_eval, seed, y_eval) in eval_sets.items():
        record[f"{split}_elbo"] = algorithm.bound(model, x_eval, seed, len(run.data.train),
                                                  y_eval)
        if model.config.classes and model.classifier is not None and y_eval is not None:
            from ..evaluation.labelled import classification_error

            record[f"{split}_error"] = classification_error(model, x_eval, y_eval)
        if cfg.eval_likelihood:
            record[f"{split}_log_likelihood"] = _appendix_d(
                model, x_eval[:cfg.eval_likelihood], seed, algorithm.trains_encoder,
                lambda done, n: report(f"appendix D estimate, {split}: {done}/{n} points"))
    model.train()
    return record


def _failed(run: Run, what: str, value) -> AevbError:
    p, cfg = run.progress, run.config
    return AevbError(f"the {what} became {value} at step {p.samples // cfg.batch_size} "
                     f"({p.samples} samples); the last good checkpoint in {run.run_dir} is kept "
                     "(try a smaller lr)")


class _Session:
    """What the loop calls besides the step (its hooks): checkpoints, evaluations, the stop
    check and the learning-rate schedule, with the progress bar and the wall clock of this
    session. Only rank 0 writes."""

    def __init__(self, run: Run, progress: bool, interrupt: Interrupt):
        from tqdm import tqdm

        self.run, self.interrupt, self.main = run, interrupt, distributed.is_main()
        cfg, p = run.config, run.progress
        device = next(run.model.parameters()).device
        # The whole split binarized, then cut: the bits `aevb evaluate` sees for the points.
        labelled = bool(run.model.config.classes)
        self.eval_sets = {split: (evaluation_set(x.to(device), split, cfg.seed,
                                                 cfg.binarize)[:limit],
                                  cfg.seed + SEED_OFFSETS[split][1],
                                  y[:limit].to(device) if labelled and y is not None else None)
                          for split, x, y, limit in (
                              ("train", run.data.train, run.data.train_labels,
                               cfg.eval_examples),
                              ("test", run.data.test, run.data.test_labels, None))}
        self.started, self.wall_before = time.perf_counter(), p.wall_seconds
        self.bar = tqdm(total=run.total, initial=p.samples, unit="sample", unit_scale=True,
                        disable=not (progress and self.main), file=sys.stderr,
                        dynamic_ncols=True)

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def save(self) -> None:
        if self.main:
            save(self.run, self.wall())
            self.interrupt.saved = self.run.progress.samples

    def evaluate_and_save(self) -> None:
        """An evaluation appended to metrics.jsonl, then a checkpoint. A stop during the
        evaluation keeps the checkpoint (the evaluation is made again on resume)."""
        if not self.main:
            return
        run, p = self.run, self.run.progress
        try:
            record = _evaluation(run, self.eval_sets,
                                 lambda text: self.bar.set_postfix_str(text, refresh=True))
        except Stop:
            run.model.train()
            self.interrupt.immediate = False
            self.save()
            self.bar.close()
            raise
        self.interrupt.immediate = False  # the log and the checkpoint are written whole
        record["seconds"] = self.wall()
        record["samples_per_second"] = p.samples / p.train_seconds if p.train_seconds else None
        record["threads"] = torch.get_num_threads()  # changes with the machine's load (threads)
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise _failed(run, bad[0].replace("_", " "), record[bad[0]])
        logs.append_metrics(run.run_dir, record)
        self.save()
        shown = record["test_elbo"] if run.algorithm.trains_encoder \
            else record.get("test_log_likelihood")
        self.bar.set_postfix(test=f"{shown:.2f}" if shown is not None else "-",
                             samples_per_s=f"{p.samples / max(p.train_seconds, 1e-9):.0f}")

    def stop_if_asked(self) -> None:
        if self.interrupt.signal is not None:
            self.save()
            self.bar.close()
            raise Interrupted(self.interrupt.signal, self.interrupt.kept())

    def schedule_lr(self) -> None:
        """The step size of the schedule: a function of the samples, so it resumes exactly."""
        cfg, run = self.run.config, self.run
        if cfg.lr_schedule != "constant":
            for group in run.optimizer.param_groups:
                group["lr"] = learning_rate(cfg, run.progress.samples, len(run.data.train),
                                            run.total)


def _minibatch(run: Run, x_train: torch.Tensor, draw_bits, spread=None) -> tuple:
    """The next minibatch of the seeded order: (x [M, D], its indices, the global size);
    where `spread` [N, D] is given, x is a draw from N(x_train, spread^2) (`data.Dataset`)."""
    p, cfg, n_train = run.progress, run.config, len(x_train)
    if run.order is None:
        run.order = torch.randperm(n_train, generator=run.generators["order"],
                                   device=x_train.device)
        p.position = 0
    # The global minibatch; this process takes every world-th point of it.
    size = min(cfg.batch_size, run.total - p.samples, n_train - p.position)
    idx = run.order[p.position:p.position + size]
    if distributed.world_size() > 1:
        idx = idx[distributed.rank()::distributed.world_size()]
    x = draw_bits(x_train, run.generators["noise"], idx) if cfg.binarize else x_train[idx]
    if spread is not None:
        x = draw_around(x, spread[idx], run.generators["noise"])
    return x, idx, size


def loop(run: Run, progress: bool, interrupt: Interrupt, evaluate_first: bool,
          outputs: bool = True) -> Path:
    """Algorithm 1's loop, the same for every algorithm: minibatches in a seeded order, the
    algorithm's step (`aevb.algorithms`: `make_step`), and the session's hooks: evaluations
    at log-spaced points, checkpoints, the step-size schedule; at the end the run's outputs
    (`outputs.finish.write_outputs`) unless `outputs` is False."""
    cfg, model, p = run.config, run.model, run.progress
    x_train = run.data.train.to(next(model.parameters()).device)
    schedule = [s for s in eval_schedule(run.total, cfg.eval_points) if s > p.samples]
    draw_bits = _binarizer(cfg, x_train.device)
    spread = None if run.data.train_spread is None else run.data.train_spread.to(x_train.device)
    labels = None if run.labels is None else \
        Observed.of(run.labels, model.config.classes, x_train, spread)
    step = run.algorithm.make_step(cfg, model, run.optimizer, run.state, run.engine.name,
                                   lambda: p.samples, len(x_train), labels)
    if progress and distributed.is_main():
        print(f"aevb: engine {run.engine.name}: {run.engine.reason}", file=sys.stderr)
    session = _Session(run, progress, interrupt)
    interrupt.immediate = True
    if evaluate_first:
        session.evaluate_and_save()
    interrupt.immediate = False
    session.stop_if_asked()
    last_save = p.samples
    model.train()
    with threads.Sharing() as sharing:  # fewer threads while other processes need the cores
        while p.samples < run.total:
            t0 = time.perf_counter()
            x, idx, size = _minibatch(run, x_train, draw_bits, spread)
            session.schedule_lr()
            try:
                step(x, idx, run.generators["noise"])
            except NonFinite as bad:
                raise _failed(run, "loss", bad.value) from None
            p.train_seconds += time.perf_counter() - t0
            sharing.tick()
            p.samples += size
            p.position += size
            session.bar.update(size)
            if p.position >= len(x_train):
                p.epoch += 1
                run.order = None
            if schedule and p.samples >= schedule[0]:
                interrupt.immediate = True
                session.evaluate_and_save()
                last_save = p.samples
                schedule = [s for s in schedule if s > p.samples]
            elif p.samples - last_save >= cfg.checkpoint_every:
                session.save()
                last_save = p.samples
            session.stop_if_asked()
    session.bar.close()
    distributed.check_replicas_identical(model)
    if distributed.is_main() and outputs:
        from ..outputs.finish import write_outputs

        interrupt.finished, interrupt.immediate = True, True
        write_outputs(run.run_dir, run.data)
    return run.run_dir
