"""Training by stochastic gradient ascent on the minibatch SGVB bound (Algorithm 1, section 5).

The loop knows nothing about the networks or the algorithm: it draws a minibatch and hands it
to the algorithm's step (`aevb.algorithms`: SGVB on an objective from `aevb.objectives`,
wake-sleep, MCEM or full VB), evaluates at log-spaced points and checkpoints. Every random number
comes from seeded generators whose states are checkpointed with the position in the data
order, so a run that is interrupted and resumed gives the same metrics as one that never
stopped (bitwise on CPU).
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
from pathlib import Path

import numpy as np
import torch

from . import (__version__, algorithms, checkpoint, distributed, integrity, numerics,
               resources, state_checks)
from .algorithms.base import NonFinite
from .config import DEFAULT_EPOCHS, MAX_SAMPLES, TrainConfig, saved_config
from .data import Dataset, load_for_config, typical_range
from .engine import Choice
from .distributions import binarize
from .errors import AevbError, AevbWarning, Interrupted
from .evaluate import SEED_OFFSETS, evaluation_set, hmc_harmonic_log_likelihood
from .model import VAE, ModelConfig, initialize
from .run_setup import (choose_engine, default_run_dir, learning_rate, make_optimizer,
                        resolve_data_settings)


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
    state: object = None  # the algorithm's own state (MCEM's chains), if it keeps one
    engine: Choice | None = None  # how the steps run, and why

    @property
    def algorithm(self):
        return algorithms.get(self.config.algorithm)


def _setup(config: TrainConfig, data: Dataset, device, run_dir: Path) -> _Run:
    n_train = len(data.train)
    total = config.samples or int(round((config.epochs or DEFAULT_EPOCHS) * n_train))
    if not 1 <= total <= MAX_SAMPLES:
        raise AevbError(f"{config.epochs} epochs of {n_train} training points are {total} "
                        "samples: the length must come to between 1 and 2^50 samples")
    world = distributed.world_size()
    if config.batch_size < world:
        raise AevbError(f"batch size {config.batch_size} is smaller than the {world} processes")
    algorithm = algorithms.get(config.algorithm)
    model_config = ModelConfig(data.shape, config.latent_dim, config.hidden, config.likelihood,
                               config.network, config.activation, prior=config.prior,
                               **algorithm.model_options(config))
    resources.check_model(model_config, "these settings")
    resources.check_step(model_config, -(-config.batch_size // world), config.mc_samples,
                         "these settings")
    model = VAE(model_config)
    initialize(model, config.init_std, torch.Generator().manual_seed(config.seed),
               config.posterior_init_std)
    model.to(device)
    rank = distributed.rank()
    generators = {
        "order": torch.Generator(device=device).manual_seed(config.seed),
        # Binarization and eps differ between processes, the data order does not.
        "noise": torch.Generator(device=device).manual_seed(config.seed + 1_000_003 * (rank + 1)),
    }
    state = algorithm.start(config, n_train, device)
    choice = choose_engine(config, model, device, total)
    return _Run(config, run_dir, data, model,
                make_optimizer(config, model, n_train, choice.name == "native"),
                generators, total, Progress(), state=state, engine=choice)


def train(config: TrainConfig, *, progress: bool = True) -> Path:
    """Train a VAE as `config` says; returns the run directory holding its results."""
    numerics.set_up()
    with _Interrupt() as interrupt:
        return _train(config, progress, interrupt)


def _train(config: TrainConfig, progress: bool, interrupt: "_Interrupt") -> Path:
    device = distributed.setup(distributed.pick_device(config.device))
    if config.out:  # fail before the (possibly slow) data loading
        checkpoint.check_new_run_dir(Path(config.out))
    data = load_for_config(config)
    config = resolve_data_settings(config, data)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    config = dataclasses.replace(config, out=str(run_dir))
    run = _setup(config, data, device, run_dir)
    main = distributed.is_main()
    if main:
        checkpoint.check_new_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.exclusive(run_dir, main):
        if main:
            # Again under the lock: another process may have made a run here since the check
            # above, and it must not be overwritten; a run that stopped before its first
            # checkpoint (nothing trained) is started again.
            if checkpoint.check_new_run_dir(run_dir):
                checkpoint.clear_unstarted(run_dir)
            interrupt.run_dir = run_dir
            integrity.start(run_dir)
            _write_run_info(run, data, device)
            # A checkpoint from the first moment: a run stopped at any later point resumes.
            _save(run, 0.0)
            interrupt.saved = 0
        return _loop(run, progress, interrupt, evaluate_first=True)


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
        "engine": {"name": run.engine.name, "reason": run.engine.reason},
    })


def resume(run_dir, *, progress: bool = True) -> Path:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped."""
    numerics.set_up()
    run_dir = Path(run_dir)
    config = saved_config(checkpoint.read_config(run_dir))
    if not (run_dir / checkpoint.STATE).exists() and not (run_dir / checkpoint.WEIGHTS).exists():
        # Stopped before its first checkpoint: nothing was trained, so it starts again.
        if progress and distributed.is_main():
            print(f"aevb: {run_dir} stopped before its first checkpoint; training it from "
                  "the start", file=sys.stderr)
        return train(dataclasses.replace(config, out=str(run_dir)), progress=progress)
    integrity.verify(run_dir, checkpoint.RUN_FILES)  # every file it will continue
    with _Interrupt() as interrupt:
        device = distributed.setup(distributed.pick_device(config.device))
        run = _setup(config, load_for_config(config), device, run_dir)
        with checkpoint.exclusive(run_dir, distributed.is_main()):
            return _resume(run, progress, interrupt)


def _resume(run: _Run, progress: bool, interrupt: "_Interrupt") -> Path:
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
    if run.state is not None:
        run.state = run.algorithm.restore(saved["extra"], run_dir, where, n_train, run.config,
                                          device)
    if run.progress.samples >= run.total:
        raise AevbError(f"{run_dir} has finished training ({run.total} samples); nothing to resume")
    samples = run.progress.samples
    interrupt.run_dir, interrupt.saved = run_dir, samples
    evaluate_first = False
    if distributed.is_main():
        # Evaluations written after the checkpoint are made again on the way.
        checkpoint.truncate_metrics(run_dir, samples)
        _record_engine(run)
        # A checkpoint taken at an evaluation point before that evaluation was logged (a stop
        # during it, or the checkpoint of step 0): the evaluation is made first.
        # Evaluations fall on the first step at or past each scheduled point, so one is due
        # when a scheduled point lies between the last record and the checkpoint.
        last = max((r["samples"] for r in checkpoint.read_metrics(run_dir)), default=-1)
        evaluate_first = (samples == 0 and last < 0) or any(
            last < point <= samples for point in eval_schedule(run.total, run.config.eval_points))
    return _loop(run, progress, interrupt, evaluate_first)


def _record_engine(run: _Run) -> None:
    """config.json names the engine the run trains on now; earlier sessions' engines, where
    they differ, are kept in its list `engine_history`."""
    info = checkpoint.read_config(run.run_dir)
    now = {"name": run.engine.name, "reason": run.engine.reason}
    if info.get("engine") == now:
        return
    history = info.get("engine_history") or []
    if info.get("engine") is not None:
        history = [*history, {**info["engine"], "until_samples": run.progress.samples}]
    checkpoint.write_config(run.run_dir, {**info, "engine": now, "engine_history": history})


class _Stop(BaseException):
    """SIGINT or SIGTERM outside the training steps: raised at once (a BaseException, so that
    no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _Interrupt:
    """SIGINT/SIGTERM while a run is made. During the steps a flag, which the loop checks
    between steps (a step is never cut in half); elsewhere (data loading, evaluations, the
    end-of-run figures) `_Stop` at once. It knows where the run stands, so that the one line
    printed says what was kept."""

    def __init__(self):
        self.signal = None
        self.previous = {}
        self.immediate = True
        self.run_dir: Path | None = None  # once the run directory is made
        self.saved: int | None = None  # samples of the last checkpoint written
        self.finished = False  # training done; the end-of-run outputs are being written

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum
        if self.immediate:
            raise _Stop(signum)

    def __exit__(self, kind, value, traceback):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if kind is _Stop:
            raise Interrupted(value.signum, self.kept()) from None

    def kept(self) -> str:
        """What a stop now leaves, in one line."""
        if self.run_dir is None:
            return "stopped before the run directory was made; nothing was written"
        if self.saved is None:
            return (f"stopped before the first checkpoint: nothing was trained; the same "
                    f"command starts {self.run_dir} again")
        if self.finished:
            return (f"training had finished ({self.saved} samples, checkpoint kept); the "
                    f"figures and report may be incomplete: aevb report {self.run_dir}")
        return (f"checkpoint saved after {self.saved} samples; continue with: "
                f"aevb train --resume {self.run_dir}")


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
    from . import native

    if not (cfg.kernels and cfg.binarize):
        return binarize
    why_not = native.available()
    if why_not is not None and device.type == "cpu":
        warnings.warn(AevbWarning(f"aevb.native unavailable ({why_not}); training on PyTorch "
                                  "operations alone (the same results up to rounding)"),
                      stacklevel=3)
    return native.binarize if why_not is None else binarize


def _save(run: _Run, wall_seconds: float) -> None:
    """A checkpoint of the run as it stands (rank 0 only)."""
    run.progress.wall_seconds = wall_seconds
    extra = run.algorithm.state_tensors(run.state) if run.state is not None else None
    checkpoint.save_checkpoint(run.run_dir, run.model, run.optimizer, run.generators,
                               dataclasses.asdict(run.progress), run.order, extra)


def _evaluation(run: _Run, eval_sets: dict, report) -> dict:
    """One metrics record: the bound (and the appendix D estimate where asked) on the fixed
    train and test evaluation sets; `report(text)` shows progress of the slow parts."""
    cfg, model, p, algorithm = run.config, run.model, run.progress, run.algorithm
    model.eval()
    record = {"samples": p.samples, "epoch": p.samples / len(run.data.train)}
    for split, (x_eval, seed) in eval_sets.items():
        record[f"{split}_elbo"] = algorithm.bound(model, x_eval, seed, len(run.data.train))
        if cfg.eval_likelihood:
            record[f"{split}_log_likelihood"] = _appendix_d(
                model, x_eval[:cfg.eval_likelihood], seed, algorithm.trains_encoder,
                lambda done, n: report(f"appendix D estimate, {split}: {done}/{n} points"))
    model.train()
    return record


def _failed(run: _Run, what: str, value) -> AevbError:
    p, cfg = run.progress, run.config
    return AevbError(f"the {what} became {value} at step {p.samples // cfg.batch_size} "
                     f"({p.samples} samples); the last good checkpoint in {run.run_dir} is kept "
                     "(try a smaller lr)")


def _loop(run: _Run, progress: bool, interrupt: _Interrupt, evaluate_first: bool) -> Path:
    """Algorithm 1's loop, the same for every algorithm: minibatches in a seeded order, the
    algorithm's step (`aevb.algorithms`: `make_step`), evaluations at log-spaced points, checkpoints."""
    cfg, model, p = run.config, run.model, run.progress
    device = next(model.parameters()).device
    rank, world, main = distributed.rank(), distributed.world_size(), distributed.is_main()
    x_train = run.data.train.to(device)
    n_train = len(x_train)
    # The whole split binarized, then cut: the bits `aevb evaluate` sees for the same points.
    eval_sets = {split: (evaluation_set(x, split, cfg.seed, cfg.binarize)[:limit],
                         cfg.seed + SEED_OFFSETS[split][1])
                 for split, x, limit in (("train", x_train, cfg.eval_examples),
                                         ("test", run.data.test.to(device), None))}
    schedule = [s for s in eval_schedule(run.total, cfg.eval_points) if s > p.samples]
    draw_bits = _binarizer(cfg, device)
    step = run.algorithm.make_step(cfg, model, run.optimizer, run.state, run.engine.name,
                                   lambda: p.samples, n_train)
    if progress and main:
        print(f"aevb: engine {run.engine.name}: {run.engine.reason}", file=sys.stderr)
    session_start, wall_before = time.perf_counter(), p.wall_seconds

    def wall() -> float:
        return wall_before + time.perf_counter() - session_start

    from tqdm import tqdm

    bar = tqdm(total=run.total, initial=p.samples, unit="sample", unit_scale=True,
               disable=not (progress and main), file=sys.stderr, dynamic_ncols=True)

    def save():
        if main:
            _save(run, wall())
            interrupt.saved = p.samples

    def evaluate_and_save():
        if not main:
            return
        try:
            record = _evaluation(run, eval_sets,
                                 lambda text: bar.set_postfix_str(text, refresh=True))
        except _Stop:
            # The weights are those of the last step: keep them; the evaluation is made
            # again when the run resumes (it finds no record for this point).
            model.train()
            interrupt.immediate = False
            save()
            bar.close()
            raise
        interrupt.immediate = False  # the log and the checkpoint are written whole
        record["seconds"] = wall()
        record["samples_per_second"] = p.samples / p.train_seconds if p.train_seconds else None
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise _failed(run, bad[0].replace("_", " "), record[bad[0]])
        checkpoint.append_metrics(run.run_dir, record)
        save()
        shown = record["test_elbo"] if run.algorithm.trains_encoder \
            else record.get("test_log_likelihood")
        bar.set_postfix(test=f"{shown:.2f}" if shown is not None else "-",
                        samples_per_s=f"{p.samples / max(p.train_seconds, 1e-9):.0f}")

    def stop_if_asked():
        if interrupt.signal is not None:
            save()
            bar.close()
            raise Interrupted(interrupt.signal, interrupt.kept())

    interrupt.immediate = True
    if evaluate_first:
        evaluate_and_save()
    interrupt.immediate = False
    stop_if_asked()
    last_save = p.samples
    model.train()
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
        noise = run.generators["noise"]
        x = draw_bits(x_train, noise, idx) if cfg.binarize else x_train[idx]
        if cfg.lr_schedule != "constant":  # a function of the samples: resumes exactly
            for group in run.optimizer.param_groups:
                group["lr"] = learning_rate(cfg, p.samples, n_train, run.total)
        try:
            step(x, idx, noise)
        except NonFinite as bad:
            raise _failed(run, "loss", bad.value) from None
        p.train_seconds += time.perf_counter() - t0
        p.samples += size
        p.position += size
        bar.update(size)
        if p.position >= n_train:
            p.epoch += 1
            run.order = None
        if schedule and p.samples >= schedule[0]:
            interrupt.immediate = True
            evaluate_and_save()
            last_save = p.samples
            schedule = [s for s in schedule if s > p.samples]
        elif p.samples - last_save >= cfg.checkpoint_every:
            save()
            last_save = p.samples
        stop_if_asked()
    bar.close()
    distributed.check_replicas_identical(model)
    if main:
        from .outputs import write_outputs

        interrupt.finished, interrupt.immediate = True, True
        write_outputs(run.run_dir, run.data)
    return run.run_dir
