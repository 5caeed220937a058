"""`aevb train` (a new run, a preset or --resume) and `aevb reproduce` (the paper's figures)."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from ..errors import AevbError
from . import flags


def add_train(sub) -> None:
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
                           type=flags.flag_type(field), default=argparse.SUPPRESS,
                           help=f"{texts.get(field.name, '')} (default: {default})")


def run_train(args) -> int:
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
    from ..rundir.logs import read_metrics

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


def add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="re-make a figure of the paper (2 to 5), resumably")
    p.add_argument("figure", choices=("fig2", "fig3", "fig4", "fig5"))
    p.add_argument("--dataset", choices=("mnist", "frey-face"),
                   help="only this dataset's panels (fig2, fig4); default: all of the figure's")
    p.add_argument("--budget", type=flags.number, default=None, metavar="SAMPLES",
                   help="training samples per configuration (default 1e6: all four figures in "
                   "about an hour on 2 CPU cores; the paper: 1e8)")
    p.add_argument("--out", default="reproduction", metavar="DIR",
                   help="runs, figures and results.md go here; run again to continue")
    p.add_argument("--likelihood-examples", type=flags.number, default=None, metavar="N",
                   help="fig3: train and test points given the appendix D estimate (paper: "
                   "1000; default: budget / 1000 between 20 and 1000)")
    p.add_argument("--data-dir", help="searched before $AEVB_DATA and ~/.cache/aevb")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="never fetch missing data files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_reproduce(args) -> int:
    from ..training.reproduce import DEFAULT_BUDGET, reproduce

    if args.likelihood_examples is not None and args.likelihood_examples < 1:
        raise AevbError(f"--likelihood-examples must be at least 1, got {args.likelihood_examples}")
    results = reproduce(args.figure, dataset=args.dataset,
                        budget=DEFAULT_BUDGET if args.budget is None else args.budget,
                        out=args.out, data_dir=args.data_dir, download=args.download,
                        likelihood_examples=args.likelihood_examples, progress=not args.quiet)
    print(f"{args.figure} done: figures and {results} in {results.parent}/")
    return 0
