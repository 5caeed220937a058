"""The commands that make files from a trained run: the figures (manifold, sample,
reconstruct, latent, plot, report), `aevb export` and `aevb explore`."""
from __future__ import annotations

import os

from ..errors import AevbError
from ..rundir import names
from . import flags


def add_figures(sub) -> None:
    for name, text in (("manifold", "decoder means over a latent grid (Figure 4)"),
                       ("sample", "decoder means for z from the prior (Figure 5)"),
                       ("reconstruct", "test images beside their reconstructions"),
                       ("latent", "test-set latent means, coloured by label"),
                       ("report", "write report.html with every figure embedded")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_dir")
        if name != "report":
            p.add_argument("--out", metavar="FILE.png", help="default: inside RUN_DIR; an "
                           "existing file is never replaced without --force")
            p.add_argument("--force", action="store_true",
                           help="replace --out if it exists (never a file of a run)")
        if name in ("manifold", "sample", "reconstruct"):
            p.add_argument("-n", type=flags.number, default={"manifold": 20, "sample": 100,
                                                        "reconstruct": 10}[name],
                           help="grid side, number of samples, or number of images")
        if name == "manifold":
            p.add_argument("--dims", type=flags.sizes, default=(0, 1), help="two latent axes, e.g. 0,1")
        if name == "sample":
            p.add_argument("--seed", type=flags.number, default=0)
        if name in ("manifold", "sample"):
            p.add_argument("--label", type=flags.number, metavar="Y",
                           help="a model with a label: decode with this class (sample "
                           "without it: a row of samples per class)")
    p = sub.add_parser("plot", help="bound against training samples for runs (Figure 2)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE.png", help="default: RUN_DIR/curves.png for one run, "
                   "curves.png here for several; an existing file is never replaced without "
                   "--force")
    p.add_argument("--force", action="store_true",
                   help="replace --out if it exists (never a file of a run)")


def _output(out, force: bool):
    """Where a figure command writes: None (the run's own figure, drawn into RUN_DIR), or a
    user's --out, checked before anything is computed; returns a writer for the PNG bytes."""
    from pathlib import Path

    from .. import files
    from ..rundir import integrity

    if out is None:
        return None
    out = Path(out)
    run = integrity.run_of(out)
    if run is not None and os.path.lexists(out):
        raise AevbError(f"{out} is a file of the run in {run}; choose a path outside it "
                        "(leave out --out to redraw the run's own figure)")
    if out.is_dir():
        raise AevbError(f"{out} is a folder; --out names a .png file")
    if os.path.lexists(out) and not force:
        raise AevbError(f"{out} exists; choose another file, or add --force to replace it")
    return lambda data: files.write_output(out, data, replace=force)


def run_figure(args) -> int:
    import io
    from pathlib import Path

    from ..outputs import plots, report
    from ..rundir.checkpoint import load, read_config
    from ..rundir.logs import read_metrics

    writer = _output(getattr(args, "out", None), getattr(args, "force", False))

    def draw(default: Path, make) -> None:
        if writer is None:
            print(make(default))
            return
        buffer = io.BytesIO()
        make(buffer)
        print(writer(buffer.getvalue()))

    if args.command == "plot":
        runs = [(report.run_label(read_config(r)), read_metrics(r)) for r in args.run_dirs]
        if writer is None and len(runs) > 1:  # curves.png here: a file of the user's
            writer = _output(names.CURVES, False)
        draw(Path(args.run_dirs[0]) / names.CURVES, lambda path: plots.curves(runs, path))
        return 0
    if args.command == "report":
        report.write_figures(args.run_dir)
        print(report.write_report(args.run_dir))
        return 0
    from ..features import pictured

    model, pixels = pictured(args.run_dir, load(args.run_dir))
    n = getattr(args, "n", 1)
    if n < 1:
        raise AevbError(f"-n must be at least 1, got {n}")
    from ..compute import resources

    images = n * n if args.command == "manifold" else n
    resources.require(images * 16 * resources.FLOAT * (model.config.data_dim + 64),
                      f"a picture of {images} images", "choose a smaller -n")
    file = {"manifold": names.MANIFOLD, "sample": names.SAMPLES,
            "reconstruct": names.RECONSTRUCTIONS, "latent": names.LATENT}[args.command]
    default = Path(args.run_dir) / file
    decoder = _with_label(model, getattr(args, "label", None), args.command)
    if args.command == "manifold":
        if len(args.dims) != 2:
            raise AevbError(f"--dims takes two latent axes, got {list(args.dims)}")
        draw(default, lambda path: plots.manifold(decoder(n * n), path, n=n,
                                                  dims=tuple(args.dims)))
    elif args.command == "sample" and model.config.classes and args.label is None:
        from ..outputs.label_plots import class_samples

        per_class = max(1, -(-n // model.config.classes))
        draw(default, lambda path: class_samples(model, path, n=per_class, seed=args.seed))
    elif args.command == "sample":
        draw(default, lambda path: plots.samples(decoder(n), path, n=n, seed=args.seed))
    else:
        _test_figure(args, model, n, draw, default, pixels)
    return 0


def _test_figure(args, model, n: int, draw, default, pixels=None) -> None:
    """`reconstruct` or `latent` of the run's test split (a model with a label reconstructs
    with the test labels observed, and has no `latent`); `pixels`: an M1 + M2 run's dataset
    of images (`features.pictured`)."""
    from ..outputs import plots
    from ..rundir.evaluations import dataset_of_run, test_set_of_run

    data = pixels if pixels is not None else dataset_of_run(args.run_dir)
    test = data.test if pixels is not None else test_set_of_run(args.run_dir, data)
    if model.config.classes and args.command == "latent":
        raise AevbError("latent draws q(z|x) of a model without a label; this one "
                        "conditions on y (its report shows the analogies instead)")
    if model.config.classes:
        view = model.given(data.test_labels[:n])
        draw(default, lambda path: plots.reconstructions(view, test[:n], path, n=n))
    elif args.command == "reconstruct":
        draw(default, lambda path: plots.reconstructions(model, test, path, n=n))
    else:
        draw(default, lambda path: plots.latent_scatter(model, test, path,
                                                        labels=data.test_labels))


def _with_label(model, label, command: str):
    """n -> what decodes n codes z: the model, or a model with a label given `label`."""
    import torch

    c = model.config.classes
    if label is None:
        if c and command == "manifold":
            raise AevbError(f"this model takes a label: give --label (0 .. {c - 1})")
        return lambda n: model
    if not c:
        raise AevbError("--label is for a model with a label (trained with --conditional)")
    if not 0 <= label < c:
        raise AevbError(f"label {label} is out of range: the model knows classes 0 .. {c - 1}")
    return lambda n: model.given(torch.tensor(label))


def add_export(sub) -> None:
    p = sub.add_parser("export", help="the encoder, decoder and likelihood scorer as ONNX or "
                       "torch.export programs")
    p.add_argument("run_dir")
    p.add_argument("--format", default="onnx", help="onnx | pt2 (torch.export)")
    p.add_argument("--out", help="folder for the programs (default RUN_DIR/export-FORMAT)")
    p.add_argument("--importance-samples", type=flags.number, default=1000, metavar="K",
                   help="K of the scorer's importance sampling (its eps input is [K, B, J])")


def run_export(args) -> int:
    from ..outputs.export import export_run

    paths = export_run(args.run_dir, args.format, args.out, args.importance_samples)
    folder = next(iter(paths.values())).parent
    print(f"{', '.join(p.name for p in paths.values())} and export.json in {folder}/")
    return 0


def add_explore(sub) -> None:
    p = sub.add_parser("explore", help="an interactive latent explorer: one self-contained "
                       "web page (RUN_DIR/explorer.html)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="write the page here instead (a new file)")
    p.add_argument("--open", action="store_true", help="also open it in the default browser")


def run_explore(args) -> int:
    from ..outputs.explorer import write_explorer

    path = write_explorer(args.run_dir, args.out)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser, no server needed")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0
