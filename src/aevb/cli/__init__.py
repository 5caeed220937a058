"""The `aevb` command: parses flags and calls one library function per subcommand.

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import AevbError, Interrupted
from . import evaluate, flags, outputs, train


def build_parser() -> argparse.ArgumentParser:
    parser = flags.Parser(prog="aevb", description="Auto-Encoding Variational Bayes")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=flags.Parser)
    train.add_train(sub)
    evaluate.add_evaluate(sub)
    outputs.add_figures(sub)
    train.add_reproduce(sub)
    outputs.add_export(sub)
    outputs.add_explore(sub)
    return parser


COMMANDS = {"train": train.run_train, "reproduce": train.run_reproduce,
            "evaluate": evaluate.run_evaluate, "export": outputs.run_export,
            "explore": outputs.run_explore,
            **{figure: outputs.run_figure
               for figure in ("manifold", "sample", "reconstruct", "latent", "plot", "report")}}


def _set_up_numerics() -> None:
    """The process-wide settings (`aevb.compute.numerics`), before torch loads."""
    from ..compute import numerics

    numerics.set_up()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, like errors."""
    text = str(message)
    print(text if text.startswith("aevb:") else f"aevb: warning: {text}", file=sys.stderr)


_STOPPED: list[int] = []  # the SIGTERM `_terminated` raised, once it has


def _terminated(signum, frame):
    """SIGTERM outside training (which handles it itself): the one line, not a silent death."""
    _STOPPED.append(signum)
    raise Interrupted(signum, _STOP_LINE)


_STOP_LINE = "stopped; files already written are kept, none was left half-written"


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
    except Interrupted as stop:
        print(f"aevb: interrupted: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("aevb: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        # A SIGTERM raised inside an import can leave a module half-made, so that the code
        # catching it fails otherwise (a RecursionError): after a stop, any error is that stop.
        if _STOPPED:
            print(f"aevb: interrupted: {_STOP_LINE}", file=sys.stderr)
            return 128 + _STOPPED[0]
        line = _peer_failure(err)
        if line is None:
            raise
        print(f"aevb: error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
