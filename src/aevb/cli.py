"""The `aevb` command: parses flags and calls one library function per subcommand.

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import MISSING, fields

from .errors import AevbError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, instead of usage + message
        self.exit(2, f"aevb: error: {message}\n")


def _number(text: str) -> int:
    """An integer that may be written like 1e6."""
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
    for name, convert in (("bool", _bool), ("int", int), ("float", float)):
        if hint.startswith(name):
            return convert
    return str


def _add_train(sub) -> None:
    from .config import PRESETS, TrainConfig

    p = sub.add_parser("train", help="train a VAE with the SGVB estimator")
    p.add_argument("--preset", choices=None, metavar="{" + ",".join(PRESETS) + "}",
                   help="the paper's settings; any other flag overrides them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for field in fields(TrainConfig):
        default = field.default if field.default is not MISSING else None
        # Defaults stay in TrainConfig: an absent flag is left out, so presets can apply.
        p.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                       type=_flag_type(field), default=argparse.SUPPRESS,
                       help=f"(default: {default})")


def _run_train(args) -> int:
    from . import config as config_module
    from .train import train

    options = {k: v for k, v in vars(args).items() if k not in ("command", "preset", "quiet")}
    cfg = config_module.resolve(args.preset, **options)
    run_dir = train(cfg, progress=not args.quiet)
    from .checkpoint import read_metrics

    last = read_metrics(run_dir)[-1]
    print(f"trained on {last['samples']} samples: train bound {last['train_elbo']:.2f} nats, "
          f"test bound {last['test_elbo']:.2f} nats per data point")
    print(f"results in {run_dir}/ (config.json, model.safetensors, metrics.jsonl)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aevb", description="Auto-Encoding Variational Bayes")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    return parser


COMMANDS = {"train": _run_train}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AevbError as err:
        print(f"aevb: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aevb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
