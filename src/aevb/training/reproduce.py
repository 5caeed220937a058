"""`aevb reproduce`: Figures 2 to 5 of the paper, each configuration an ordinary run directory.

Every configuration of a figure trains into OUT/runs/<name>, where the name says what it is
(`mnist-nz20-h500-aevb`). Figures share runs with equal settings (Figure 5's N_z = 20 model is
Figure 2's), a finished run is never trained again, an interrupted one is resumed from its last
checkpoint, and a directory holding other settings is refused rather than overwritten. After
the runs, the figure is drawn from their metrics and OUT/results.md is rewritten with the final
numbers of every figure reproduced into OUT so far.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import algorithms, files
from ..config import TrainConfig, resolve
from ..errors import AevbError, Interrupted
from ..outputs import plots
from ..rundir import checkpoint, folder, logs, names

# Training samples per configuration. The default finishes all four figures in about an hour
# on a 2-core CPU (55 minutes, see docs/reproduction.md); the paper trained up to 1e8.
DEFAULT_BUDGET = 1_000_000
PAPER_BUDGET = 100_000_000

FIGURES = ("fig2", "fig3", "fig4", "fig5")
# Section 5: the latent sizes and hidden widths of Figure 2.
FIG2_LATENT = {"mnist": (3, 5, 10, 20, 200), "frey-face": (2, 5, 10, 20)}
PRESET = {"mnist": "mnist-paper", "frey-face": "frey-paper"}
# Figure 3: N_z = 3, 100 hidden units, training sets of 1000 and 50000 points; the marginal
# likelihood of the first 1000 train and test points by the appendix D estimator.
FIG3_TRAIN_SIZES = (1000, 50000)


def fig3_evaluations(budget: int, likelihood_examples: int | None = None) -> tuple[int, int]:
    """(evaluations per run, points per split given the appendix D estimate) for Figure 3.

    The appendix D estimate (HMC on every evaluated point) costs far more than training at
    small budgets, so both follow the budget unless given: 6 evaluations of 1000 points at the
    default 10^6 samples (the paper's 1000 points), down to 3 of 20 points at 2 x 10^4."""
    points = likelihood_examples if likelihood_examples is not None else \
        min(1000, max(20, budget // 1000))
    return (6 if budget >= 200_000 else 3), points
# Settings that change where or how a run is computed, not what it is.
_NOT_COMPARED = ("out", "data_dir", "download", "device")


@dataclass(frozen=True)
class Spec:
    """One configuration of a figure: its run directory name, settings and place in the plot."""

    name: str
    config: TrainConfig
    panel: str  # subplot title, e.g. "MNIST, N_z = 20"
    algorithm: str  # a name of aevb.algorithms


def _spec(dataset: str, latent: int, algorithm: str, budget: int, common: dict, panel: str,
          **extra) -> Spec:
    config = resolve(PRESET[dataset], latent_dim=latent, algorithm=algorithm, samples=budget,
                     **common, **extra)
    name = f"{dataset}-nz{latent}-h{','.join(map(str, config.hidden))}"
    if config.train_examples is not None:
        name += f"-n{config.train_examples}"
    return Spec(f"{name}-{algorithm}", config, panel, algorithm)


def _title(dataset: str) -> str:
    return {"mnist": "MNIST", "frey-face": "Frey Face"}[dataset]


def plan(figure: str, dataset: str | None = None, budget: int = DEFAULT_BUDGET,
         data_dir: str | None = None, download: bool = True,
         likelihood_examples: int | None = None) -> list[Spec]:
    """The configurations `figure` needs, in the order they are trained."""
    if figure not in FIGURES:
        raise AevbError(f"unknown figure {figure!r}; choose one of {', '.join(FIGURES)}")
    if budget < 1:
        raise AevbError(f"budget must be at least 1 sample, got {budget}")
    datasets = {"fig2": ("mnist", "frey-face"), "fig3": ("mnist",),
                "fig4": ("frey-face", "mnist"), "fig5": ("mnist",)}[figure]
    if dataset is not None:
        if dataset not in datasets:
            raise AevbError(f"{figure} is drawn for {' and '.join(datasets)}, not {dataset!r}")
        datasets = (dataset,)
    common = dict(data_dir=data_dir, download=download)
    specs = []
    for ds in datasets:
        if figure == "fig2":
            specs += [_spec(ds, nz, alg, budget, common, f"{_title(ds)}, N_z = {nz}")
                      for nz in FIG2_LATENT[ds] for alg in ("aevb", "wake-sleep")]
        elif figure == "fig3":
            evaluations, points = fig3_evaluations(budget, likelihood_examples)
            specs += [_spec(ds, 3, alg, budget, common, f"N_train = {n}", hidden=(100,),
                            train_examples=n, eval_points=evaluations, eval_examples=1000,
                            eval_likelihood=points)
                      for n in FIG3_TRAIN_SIZES for alg in ("aevb", "wake-sleep", "mcem")]
        elif figure == "fig4":
            specs.append(_spec(ds, 2, "aevb", budget, common, _title(ds)))
        else:
            specs += [_spec(ds, nz, "aevb", budget, common, f"N_z = {nz}")
                      for nz in (2, 5, 10, 20)]
    return specs


def _differences(stored: dict, wanted: TrainConfig) -> list[str]:
    out = []
    for key, value in wanted.to_dict().items():
        if key in _NOT_COMPARED or (key in ("likelihood", "binarize") and value is None):
            continue  # None is resolved from the data when the run starts
        have = stored.get(key, TrainConfig.__dataclass_fields__[key].default)
        if (list(have) if isinstance(have, (list, tuple)) else have) != \
                (list(value) if isinstance(value, tuple) else value):
            out.append(f"{key.replace('_', '-')} {have!r} (wanted {value!r})")
    return out


def ensure_trained(spec: Spec, run_dir: Path, progress: bool = True) -> str:
    """Train, resume or keep the run of `spec` in run_dir; returns what was done."""
    from .trainer import resume, train

    config = dataclasses.replace(spec.config, out=str(run_dir))
    if (run_dir / names.CONFIG).exists():
        info = checkpoint.read_config(run_dir)
        differences = _differences(info.get("config", {}), config)
        if differences:
            raise AevbError(f"{run_dir} holds a run with other settings "
                            f"({'; '.join(differences)}); choose another --out")
        if (run_dir / names.STATE).exists():
            done = checkpoint.read_progress(run_dir)["samples"] >= info["total_samples"]
            if done:
                return "finished earlier"
            resume(run_dir, progress=progress)
            return "resumed"
        if (run_dir / names.WEIGHTS).exists():
            raise AevbError(f"{run_dir} has weights but no training state; move it away")
    # A run that stopped before its first checkpoint is started again by `train`, which
    # decides so under the run's lock (another process may be starting it right now).
    train(config, progress=progress)
    return "trained"


def _records(out: Path, specs: list[Spec]) -> dict[str, list[dict]]:
    return {s.name: logs.read_metrics(out / "runs" / s.name) for s in specs}


def draw(figure: str, specs: list[Spec], out: Path) -> list[Path]:
    """The figure's PNGs in `out`, from the runs' metrics and models."""
    runs = out / "runs"
    if figure in ("fig2", "fig3"):
        records = _records(out, specs)
        key, log_x = ("elbo", True) if figure == "fig2" else ("log_likelihood", False)
        datasets = dict.fromkeys(s.config.dataset for s in specs)
        paths = []
        for ds in datasets:
            panels: dict[str, list] = {}
            for s in specs:
                if s.config.dataset == ds:
                    panels.setdefault(s.panel, []).append((algorithms.get(s.algorithm).label,
                                                           records[s.name]))
            path = out / (f"fig2-{ds}.png" if figure == "fig2" else "fig3.png")
            ylabel = "L (lower bound per data point, nats)" if figure == "fig2" else \
                "marginal log-likelihood (nats per data point)"
            paths.append(plots.panel_curves(list(panels.items()), path, key, log_x, ylabel))
        return paths
    from ..rundir.checkpoint import load

    if figure == "fig4":
        return [plots.manifold(load(runs / s.name), out / f"fig4-{s.config.dataset}.png")
                for s in specs]
    return [plots.samples(load(runs / s.name), out / f"fig5-nz{s.config.latent_dim}.png")
            for s in specs]


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def results_markdown(out: Path, done: dict[str, list[Spec]]) -> str:
    """results.md: for each figure reproduced into `out`, the final numbers of its runs."""
    lines = ["# Reproduction results", "",
             "Made by `aevb reproduce`: nats per data point at the last evaluation of each run. "
             "Lower bounds are estimator B with L = 1 on the first `eval-examples` training "
             "points and the whole test set; marginal likelihoods (fig3) are the appendix D "
             "estimate on the first `eval-likelihood` points of each split (see each run's "
             "config.json).", ""]
    for figure in FIGURES:
        if figure not in done:
            continue
        specs = done[figure]
        last = {s.name: (logs.read_metrics(out / "runs" / s.name) or [{}])[-1]
                for s in specs}
        samples = sorted({last[s.name].get("samples", 0) for s in specs})
        lines += [f"## {figure}", "", f"Training samples per run: "
                  f"{', '.join(f'{n:,}' for n in samples)}.", ""]
        if figure == "fig3":
            head, key, unit = ("training points",), "log_likelihood", "log p(x)"
        else:
            head, key, unit = ("dataset", "N_z"), "elbo", "bound"
        lines += [f"| {' | '.join(head)} | algorithm | train {unit} | test {unit} | run |",
                  "|" + "---|" * (len(head) + 4)]
        for s in specs:
            r = last[s.name]
            what = (s.config.train_examples,) if figure == "fig3" else \
                (s.config.dataset, s.config.latent_dim)
            lines.append(f"| {' | '.join(map(str, what))} | {algorithms.get(s.algorithm).label} | "
                         f"{_fmt(r.get('train_' + key))} | {_fmt(r.get('test_' + key))} | "
                         f"`runs/{s.name}` |")
        lines.append("")
    return "\n".join(lines)


def cost_summary(figure: str, specs: list[Spec]) -> str:
    """What `figure` will compute, said before it starts."""
    c = specs[0].config
    text = f"{figure}: {len(specs)} runs of {c.samples:,} training samples each"
    if c.eval_likelihood:
        points = sum(2 * s.config.eval_points * s.config.eval_likelihood for s in specs)
        text += (f"; {c.eval_points} evaluations per run, each with the appendix D estimate "
                 f"(HMC) on {c.eval_likelihood} train and {c.eval_likelihood} test points "
                 f"({points:,} point-estimates in all, the costly part; fewer with "
                 "--likelihood-examples)")
    return text + "; finished runs are reused"


def reproduce(figure: str, *, dataset: str | None = None, budget: int = DEFAULT_BUDGET,
              out="reproduction", data_dir: str | None = None, download: bool = True,
              likelihood_examples: int | None = None, progress: bool = True) -> Path:
    """Train (or resume, or reuse) every configuration of `figure`, draw it into `out` and
    rewrite out/results.md; returns the path of results.md."""
    out = Path(out)
    specs = plan(figure, dataset, budget, data_dir, download, likelihood_examples)
    print(cost_summary(figure, specs), file=sys.stderr)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(specs, 1):
        run_dir = out / "runs" / spec.name
        try:
            what = ensure_trained(spec, run_dir, progress)
        except Interrupted as stop:
            raise Interrupted(stop.signum, f"{spec.name} saved a checkpoint; run the same "
                              "aevb reproduce command again to continue") from None
        print(f"[{i}/{len(specs)}] {spec.name}: {what}", file=sys.stderr)
    for path in draw(figure, specs, out):
        print(path, file=sys.stderr)
    # Which runs each figure used, so results.md covers every figure made into `out`; locked,
    # as reproductions of two figures may finish at once (docs/reproduce.sh runs two).
    with folder.exclusive(out, wait=True):
        index_path = out / "reproduce.json"
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        index[figure] = {"dataset": dataset, "budget": budget, "data_dir": data_dir,
                         "likelihood_examples": likelihood_examples}
        files.atomic_write(index_path, (json.dumps(index, indent=2) + "\n").encode())
        done = {f: plan(f, v["dataset"], v["budget"], v["data_dir"], True,
                        v["likelihood_examples"]) for f, v in index.items()}
        results = out / "results.md"
        files.atomic_write(results, results_markdown(out, done).encode())
    return results
