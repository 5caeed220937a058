"""The `aevb` command: parses flags and calls one library function per subcommand.

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import typing
import warnings
from dataclasses import MISSING, fields

from ..errors import AevbError, Interrupted


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, instead of usage + message
        self.exit(2, f"aevb: error: {message}\n")


def _number(text: str) -> int:
    """An integer that may be written like 1e6: the one converter of every integer option."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 500 or 500,500: {text!r}") from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false: {text!r}")


def _optional_float(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _flag_type(field) -> typing.Callable:
    special = {"hidden": _sizes, "samples": _number, "weight_prior_std": _optional_float}
    if field.name in special:
        return special[field.name]
    hint = str(field.type)
    for name, convert in (("bool", _bool), ("int", _number), ("float", float)):
        if hint.startswith(name):
            return convert
    return str


def _add_train(sub) -> None:
    from ..config import PRESETS, TrainConfig, field_help, sections

    p = sub.add_parser("train", help="train a VAE with the SGVB estimator")
    p.add_argument("--preset", choices=None, metavar="{" + ",".join(PRESETS) + "}",
                   help="the paper's settings; any other flag overrides them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint (no other options)")
    nested = sections()
    # One flag per field; a section's fields (an algorithm's settings) are SECTION-FIELD.
    for owner, prefix in [(TrainConfig, ""), *((cls, name + "_") for name, cls in nested.items())]:
        texts = field_help(owner)
        for field in fields(owner):
            if not prefix and field.name in nested:
                continue
            default = field.default if field.default is not MISSING else None
            # Defaults stay in the config: an absent flag is left out, so presets can apply.
            name = prefix + field.name
            p.add_argument("--" + name.replace("_", "-"), dest=name,
                           type=_flag_type(field), default=argparse.SUPPRESS,
                           help=f"{texts.get(field.name, '')} (default: {default})")


def _run_train(args) -> int:
    from .. import config as config_module
    from ..training.trainer import train

    options = {k: v for k, v in vars(args).items()
               if k not in ("command", "preset", "quiet", "resume")}
    if args.resume is not None:
        if options or args.preset:
            raise AevbError("--resume takes no other training options: the run's config.json "
                            "holds them")
        from ..training.trainer import resume

        run_dir = resume(args.resume, progress=not args.quiet)
    else:
        cfg = config_module.resolve(args.preset, **options)
        run_dir = train(cfg, progress=not args.quiet)
    from ..compute import distributed
    from ..rundir.checkpoint import read_metrics

    main_rank = distributed.is_main()
    distributed.teardown()
    if not main_rank:  # rank 0 alone reports
        return 0
    last = read_metrics(run_dir)[-1]
    print(f"trained on {last['samples']} samples: " + _final_numbers(last))
    print(f"results in {run_dir}/ (report.html, figures, model.safetensors, metrics.jsonl)")
    return 0


def _final_numbers(record: dict) -> str:
    parts = [f"{split} {name} {record[f'{split}_{key}']:.2f} nats"
             for key, name in (("elbo", "bound"), ("log_likelihood", "log p(x)"))
             for split in ("train", "test") if record.get(f"{split}_{key}") is not None]
    return ", ".join(parts) + " per data point"


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="lower bound and importance-sampled log-likelihood")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--importance-samples", type=_number, default=5000, metavar="K")
    p.add_argument("--batch-size", type=_number, default=100, metavar="B")
    p.add_argument("--data", help="score a .npy/.npz file or an image folder instead of a split")
    p.add_argument("--per-example", metavar="FILE.npy", help="save one log p(x) per data point")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--method", choices=("importance", "hmc-harmonic"), default="importance",
                   help="importance sampling with q(z|x), or the paper's appendix D estimator "
                   "(HMC draws from the posterior; then --importance-samples is the number "
                   "of draws per data point, the paper's 50)")
    p.add_argument("--limit", type=_number, help="only the first LIMIT data points "
                   "(appendix D used the first 1000)")
    p.add_argument("--noise", metavar="EPS.npy", help="standard normal draws [K, N, J] to use "
                   "instead of the seeded ones (the noise an exported scorer was given)")


def _run_evaluate(args) -> int:
    import io
    import json
    from pathlib import Path

    import numpy as np

    from .. import files
    from ..rundir.checkpoint import EVALUATIONS, append_jsonl
    from ..errors import AevbWarning
    from ..rundir.evaluations import evaluate_run

    per_example = Path(args.per_example) if args.per_example else None
    if per_example is not None:
        if per_example.suffix != ".npy":
            raise AevbError(f"--per-example must name a .npy file, got {per_example}")
        if os.path.lexists(per_example):
            raise AevbError(f"{per_example} exists; choose another file (nothing is overwritten)")
    result = evaluate_run(args.run_dir, split=args.split,
                          importance_samples=args.importance_samples,
                          batch_size=args.batch_size, data=args.data, device=args.device,
                          method=args.method, limit=args.limit, noise=args.noise)
    summary = result.summary()
    if per_example is not None:
        buffer = io.BytesIO()
        np.save(buffer, result.per_example)
        files.write_new(per_example, buffer.getvalue())
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        _print_evaluation(result)
    if args.data is None:
        # After the result is shown: a run on a read-only disk still gives its numbers.
        try:
            append_jsonl(Path(args.run_dir) / EVALUATIONS, summary)
        except AevbError as err:
            warnings.warn(AevbWarning(f"the result is not logged: {err}"), stacklevel=1)
    return 0


def _print_evaluation(result) -> None:
    bound = "" if result.elbo is None else f"lower bound {result.elbo:.2f} nats, "
    what = "log-likelihood" if result.posterior_std is None else \
        "predictive log-likelihood log E_q(theta)[p(x|theta)]"
    pairs = "" if result.posterior_std is None else " (theta, z) pairs"
    print(f"{result.split}: {result.n} data points, {bound}"
          f"{what} {result.log_likelihood:.2f} nats ({result.method}, "
          f"K = {result.importance_samples}{pairs}, {result.seconds:.1f} s)")
    for layer in result.posterior_std or ():
        print(f"posterior sigma of decoder.{layer['name']} ({layer['size']} values): "
              f"mean {layer['mean']:.3g}, median {layer['median']:.3g}, "
              f"min {layer['min']:.3g}, max {layer['max']:.3g}")
    if result.active_units is not None:
        kl = ", ".join(f"{v:.2f}" for v in result.kl_per_dimension)
        print(f"active latent units: {result.active_units} of "
              f"{len(result.kl_per_dimension)}; KL per dimension (nats): {kl}")
    sys.stdout.flush()


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="the encoder, decoder and likelihood scorer as ONNX or "
                       "torch.export programs")
    p.add_argument("run_dir")
    p.add_argument("--format", default="onnx", help="onnx | pt2 (torch.export)")
    p.add_argument("--out", help="folder for the programs (default RUN_DIR/export-FORMAT)")
    p.add_argument("--importance-samples", type=_number, default=1000, metavar="K",
                   help="K of the scorer's importance sampling (its eps input is [K, B, J])")


def _run_export(args) -> int:
    from ..outputs.export import export_run

    paths = export_run(args.run_dir, args.format, args.out, args.importance_samples)
    folder = next(iter(paths.values())).parent
    print(f"{', '.join(p.name for p in paths.values())} and export.json in {folder}/")
    return 0


def _add_explore(sub) -> None:
    p = sub.add_parser("explore", help="an interactive latent explorer: one self-contained "
                       "web page (RUN_DIR/explorer.html)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="write the page here instead (a new file)")
    p.add_argument("--open", action="store_true", help="also open it in the default browser")


def _run_explore(args) -> int:
    from ..outputs.explorer import write_explorer

    path = write_explorer(args.run_dir, args.out)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser, no server needed")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def _add_figures(sub) -> None:
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
            p.add_argument("-n", type=_number, default={"manifold": 20, "sample": 100,
                                                        "reconstruct": 10}[name],
                           help="grid side, number of samples, or number of images")
        if name == "manifold":
            p.add_argument("--dims", type=_sizes, default=(0, 1), help="two latent axes, e.g. 0,1")
        if name == "sample":
            p.add_argument("--seed", type=_number, default=0)
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


def _run_figure(args) -> int:
    import io
    from pathlib import Path

    from ..outputs import plots, report
    from ..rundir.checkpoint import load, read_config, read_metrics
    from ..rundir.evaluations import dataset_of_run, test_set_of_run

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
            writer = _output("curves.png", False)
        draw(Path(args.run_dirs[0]) / "curves.png", lambda path: plots.curves(runs, path))
        return 0
    if args.command == "report":
        report.write_figures(args.run_dir)
        print(report.write_report(args.run_dir))
        return 0
    model = load(args.run_dir)
    n = getattr(args, "n", 1)
    if n < 1:
        raise AevbError(f"-n must be at least 1, got {n}")
    from ..compute import resources

    images = n * n if args.command == "manifold" else n
    resources.require(images * 16 * resources.FLOAT * (model.config.data_dim + 64),
                      f"a picture of {images} images", "choose a smaller -n")
    file = {"manifold": "manifold.png", "sample": "samples.png",
            "reconstruct": "reconstructions.png", "latent": "latent.png"}[args.command]
    default = Path(args.run_dir) / file
    if args.command == "manifold":
        if len(args.dims) != 2:
            raise AevbError(f"--dims takes two latent axes, got {list(args.dims)}")
        draw(default, lambda path: plots.manifold(model, path, n=n, dims=tuple(args.dims)))
    elif args.command == "sample":
        draw(default, lambda path: plots.samples(model, path, n=n, seed=args.seed))
    else:
        data = dataset_of_run(args.run_dir)
        test = test_set_of_run(args.run_dir, data)
        if args.command == "reconstruct":
            draw(default, lambda path: plots.reconstructions(model, test, path, n=n))
        else:
            draw(default, lambda path: plots.latent_scatter(model, test, path,
                                                            labels=data.test_labels))
    return 0


def _add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="re-make a figure of the paper (2 to 5), resumably")
    p.add_argument("figure", choices=("fig2", "fig3", "fig4", "fig5"))
    p.add_argument("--dataset", choices=("mnist", "frey-face"),
                   help="only this dataset's panels (fig2, fig4); default: all of the figure's")
    p.add_argument("--budget", type=_number, default=None, metavar="SAMPLES",
                   help="training samples per configuration (default 1e6: all four figures in "
                   "about an hour on 2 CPU cores; the paper: 1e8)")
    p.add_argument("--out", default="reproduction", metavar="DIR",
                   help="runs, figures and results.md go here; run again to continue")
    p.add_argument("--likelihood-examples", type=_number, default=None, metavar="N",
                   help="fig3: train and test points given the appendix D estimate (paper: "
                   "1000; default: budget / 1000 between 20 and 1000)")
    p.add_argument("--data-dir", help="searched before $AEVB_DATA and ~/.cache/aevb")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="never fetch missing data files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_reproduce(args) -> int:
    from ..training.reproduce import DEFAULT_BUDGET, reproduce

    if args.likelihood_examples is not None and args.likelihood_examples < 1:
        raise AevbError(f"--likelihood-examples must be at least 1, got {args.likelihood_examples}")
    results = reproduce(args.figure, dataset=args.dataset,
                        budget=DEFAULT_BUDGET if args.budget is None else args.budget,
                        out=args.out, data_dir=args.data_dir, download=args.download,
                        likelihood_examples=args.likelihood_examples, progress=not args.quiet)
    print(f"{args.figure} done: figures and {results} in {results.parent}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aevb", description="Auto-Encoding Variational Bayes")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_evaluate(sub)
    _add_figures(sub)
    _add_reproduce(sub)
    _add_export(sub)
    _add_explore(sub)
    return parser


COMMANDS = {"train": _run_train, "evaluate": _run_evaluate, "manifold": _run_figure,
            "sample": _run_figure, "reconstruct": _run_figure, "latent": _run_figure,
            "plot": _run_figure, "report": _run_figure, "reproduce": _run_reproduce,
            "export": _run_export, "explore": _run_explore}


def _set_up_numerics() -> None:
    """The process-wide settings (`aevb.compute.numerics`), before torch loads."""
    from ..compute import numerics

    numerics.set_up()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, like errors."""
    text = str(message)
    print(text if text.startswith("aevb:") else f"aevb: warning: {text}", file=sys.stderr)


def _terminated(signum, frame):
    """SIGTERM outside training (which handles it itself): the one line, not a silent death."""
    raise Interrupted(signum, "stopped; files already written are kept, none was left "
                      "half-written")


def _peer_failure(err: BaseException) -> str | None:
    """One line for a torch.distributed failure under torchrun (a process of the group died
    or left), None for anything else."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not isinstance(err, RuntimeError):
        return None
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return (f"another process of this torchrun group stopped ({first}); the run's last "
            "checkpoint is kept: start the same torchrun command with --resume RUN_DIR")


def main(argv: list[str] | None = None) -> int:
    try:  # first of all: a SIGTERM in the first second gets its line too
        import signal

        signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread
        pass
    try:
        args = build_parser().parse_args(argv)
        _set_up_numerics()
        warnings.showwarning = _show_warning
        return COMMANDS[args.command](args)
    except AevbError as err:
        print(f"aevb: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system failed us (a full disk, a lost mount)
        where = f" ({err.filename})" if err.filename else ""
        print(f"aevb: error: {err.strerror or err}{where}; files already written are kept",
              file=sys.stderr)
        return 1
    except RuntimeError as err:
        line = _peer_failure(err)
        if line is None:
            raise
        print(f"aevb: error: {line}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        print(f"aevb: interrupted: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("aevb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
