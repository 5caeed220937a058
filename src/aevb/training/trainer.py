"""Training by stochastic gradient ascent on the minibatch SGVB bound (Algorithm 1, section 5).

`train` and `resume` build a run (model, optimizer, generators, the algorithm's state) from a
config or a checkpoint and hand it to the loop (`aevb.training.loop`), which knows nothing about the
networks or the algorithm (`aevb.algorithms`).
Under torchrun each process trains on its share of every global minibatch, gradients are
averaged by DistributedDataParallel, and only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import platform
import sys
from pathlib import Path

import torch

from .. import __version__, algorithms
from ..compute import distributed, numerics, resources
from ..config import DEFAULT_EPOCHS, MAX_SAMPLES, TrainConfig, saved_config
from ..data import Dataset, typical_range
from ..data.labels import check_range, class_count, observed_labels
from ..errors import AevbError
from ..features import keep as keep_features
from ..features import load_data
from ..model import VAE, ModelConfig, initialize
from ..rundir import checkpoint, folder, integrity, logs, names, state_checks
from .build import choose_engine, default_run_dir, make_optimizer, resolve_data_settings
from .interrupt import Interrupt
from .loop import Progress, Run, eval_schedule, loop, save


def _setup(config: TrainConfig, data: Dataset, device, run_dir: Path) -> Run:
    n_train = len(data.train)
    total = config.samples or int(round((config.epochs or DEFAULT_EPOCHS) * n_train))
    if not 1 <= total <= MAX_SAMPLES:
        raise AevbError(f"{config.epochs} epochs of {n_train} training points are {total} "
                        "samples: the length must come to between 1 and 2^50 samples")
    world = distributed.world_size()
    if config.batch_size < world:
        raise AevbError(f"batch size {config.batch_size} is smaller than the {world} processes")
    algorithm = algorithms.get(config.algorithm)
    classes, observed = _labels(config, data)
    model_config = ModelConfig(data.shape, config.latent_dim, config.hidden, config.likelihood,
                               config.network, config.activation, prior=config.prior,
                               prior_components=config.prior_components,
                               posterior=config.posterior, flow_steps=config.flow_steps,
                               top_latent_dim=config.top_latent_dim,
                               top_hidden=config.top_hidden, classes=classes,
                               classifier_hidden=config.classifier,
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
    return Run(config, run_dir, data, model,
                make_optimizer(config, model, n_train, choice.name == "native"),
                generators, total, Progress(), state=state, engine=choice, labels=observed)


def _labels(config: TrainConfig, data: Dataset) -> tuple[int, torch.Tensor | None]:
    """(C, the training labels the run uses) for a model with a label; (0, None) without.
    Drawn again the same way on every resume (`data.labels.observed_labels`)."""
    if not config.conditional:
        return 0, None
    if data.train_labels is None:
        raise AevbError(f"{data.name} has no labels: give an .npz with y (or labels), a folder "
                        "with one sub-folder per class, or a dataset with label files")
    classes = class_count(data.train_labels, data.name)
    if data.test_labels is not None:
        check_range(data.test_labels, classes, f"{data.name}, test split")
    return classes, observed_labels(data.train_labels, config.labels, classes, config.seed)


def train(config: TrainConfig, *, progress: bool = True, outputs: bool = True) -> Path:
    """Train a VAE as `config` says; returns the run directory holding its results. With
    `outputs` False the run ends without its figures, report and explorer page (`aevb report`
    makes them later)."""
    numerics.set_up()
    with Interrupt() as interrupt:
        return _train(config, progress, interrupt, outputs)


def _train(config: TrainConfig, progress: bool, interrupt: Interrupt,
           outputs: bool = True) -> Path:
    device = distributed.setup(distributed.pick_device(config.device))
    if config.out:  # fail before the (possibly slow) data loading
        folder.check_new_run_dir(Path(config.out))
    data = load_data(config)
    config = resolve_data_settings(config, data)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    config = dataclasses.replace(config, out=str(run_dir))
    run = _setup(config, data, device, run_dir)
    main = distributed.is_main()
    if main:
        folder.check_new_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    with folder.exclusive(run_dir, main):
        if main:
            # Again under the lock: another process may have made a run here since the check
            # above, and it must not be overwritten; a run that stopped before its first
            # checkpoint (nothing trained) is started again.
            if folder.check_new_run_dir(run_dir):
                folder.clear_unstarted(run_dir)
            interrupt.run_dir = run_dir
            integrity.start(run_dir)
            if config.features:  # what the data came from, kept with the run
                keep_features(config.features, run_dir)
            _write_run_info(run, data, device)
            # A checkpoint from the first moment: a run stopped at any later point resumes.
            save(run, 0.0)
            interrupt.saved = 0
        return loop(run, progress, interrupt, True, outputs)


def _write_run_info(run: Run, data: Dataset, device) -> None:
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


def resume(run_dir, *, progress: bool = True, outputs: bool = True) -> Path:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped."""
    numerics.set_up()
    run_dir = Path(run_dir)
    config = saved_config(checkpoint.read_config(run_dir))
    if not (run_dir / names.STATE).exists() and not (run_dir / names.WEIGHTS).exists():
        # Stopped before its first checkpoint: nothing was trained, so it starts again.
        if progress and distributed.is_main():
            print(f"aevb: {run_dir} stopped before its first checkpoint; training it from "
                  "the start", file=sys.stderr)
        return train(dataclasses.replace(config, out=str(run_dir)), progress=progress,
                     outputs=outputs)
    integrity.verify(run_dir, names.RUN_FILES)  # every file it will continue
    with Interrupt() as interrupt:
        device = distributed.setup(distributed.pick_device(config.device))
        run = _setup(config, load_data(config, run_dir), device, run_dir)
        with folder.exclusive(run_dir, distributed.is_main()):
            return _resume(run, progress, interrupt, outputs)


def _resume(run: Run, progress: bool, interrupt: Interrupt, outputs: bool = True) -> Path:
    run_dir, device = run.run_dir, next(run.model.parameters()).device
    saved = checkpoint.load_training_state(run_dir, run.model, run.optimizer, run.generators,
                                           rank=distributed.rank())
    where, n_train = f"{run_dir}/{names.STATE}", len(run.data.train)
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
        logs.truncate_metrics(run_dir, samples)
        _record_engine(run)
        # A checkpoint taken at an evaluation point before that evaluation was logged (a stop
        # during it, or the checkpoint of step 0): the evaluation is made first.
        # Evaluations fall on the first step at or past each scheduled point, so one is due
        # when a scheduled point lies between the last record and the checkpoint.
        last = max((r["samples"] for r in logs.read_metrics(run_dir)), default=-1)
        evaluate_first = (samples == 0 and last < 0) or any(
            last < point <= samples for point in eval_schedule(run.total, run.config.eval_points))
    return loop(run, progress, interrupt, evaluate_first, outputs)


def _record_engine(run: Run) -> None:
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
