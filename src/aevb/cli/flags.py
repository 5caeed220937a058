"""The command's parser and its converters: one converter per type of flag, so a flag takes
what its config field takes (1e6 for an integer, 500,500 for sizes, none for an optional
number) and a bad value is one line and exit status 2."""
from __future__ import annotations

import argparse
import typing


class Parser(argparse.ArgumentParser):
    """argparse with aevb's one-line errors."""

    def error(self, message):  # one line, status 2, instead of usage + message
        self.exit(2, f"aevb: error: {message}\n")


def number(text: str) -> int:
    """An integer that may be written like 1e6: the one converter of every integer option."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 500 or 500,500: {text!r}") from None


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false: {text!r}")


def optional_float(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def optional_sizes(text: str) -> tuple[int, ...] | None:
    return None if text.lower() == "none" else sizes(text)


def optional_number(text: str) -> int | None:
    return None if text.lower() == "none" else number(text)


def flag_type(field) -> typing.Callable:
    special = {"hidden": sizes, "top_hidden": sizes, "samples": number,
               "weight_prior_std": optional_float, "classifier": optional_sizes,
               "labels": optional_number}
    if field.name in special:
        return special[field.name]
    hint = str(field.type)
    for name, convert in (("bool", boolean), ("int", number), ("float", float)):
        if hint.startswith(name):
            return convert
    return str
