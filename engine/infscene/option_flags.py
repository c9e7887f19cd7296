"""Command-line flags built from the option table (sr_options.py), for every subcommand that takes its options.

`infscene sr` takes every option of the table; `infscene serve` takes the few that decide a block's pixels (scale,
model, seed, detail, margin). Both build them here from the same rows, so a flag, its default, its range and its
help are written once.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from . import sr_options as table
from .console import band_list
from .sr_options import Option, help_text


def _valued(kind: Callable[[str], object], **extra: object) -> Callable[[Option], dict]:
    """argparse's keywords for an option that takes a value of `kind`."""
    return lambda option: {"type": kind, "default": option.default, **extra,
                           "metavar": option.metavar or option.flag[2:].upper().replace("-", "_")}


# How each kind of option of the table is parsed.
_ARGPARSE: dict[str, Callable[[Option], dict]] = {
    table.INT: _valued(int),
    table.FLOAT: _valued(float),
    table.TEXT: _valued(str),
    table.PATH: _valued(Path),
    table.BANDS: _valued(band_list),
    table.BOUNDS: _valued(float, nargs=4),
    table.CHOICE: lambda option: {"choices": list(option.values), "default": option.default},
    table.SWITCH: lambda option: {"action": "store_true"},
    table.OFF_SWITCH: lambda option: {"action": "store_false"},
}


def add_option_flags(parser: argparse.ArgumentParser, options: Sequence[Option], one_size_required: bool) -> None:
    """A flag for each option, in its order; options of one group (--scale / --target-res) exclude each other, and
    with `one_size_required` one of them must be given."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for option in options:
        if option.group and option.group not in groups:
            groups[option.group] = parser.add_mutually_exclusive_group(required=one_size_required)
        target = groups[option.group] if option.group else parser
        target.add_argument(option.flag, dest=option.name, help=help_text(option), **_ARGPARSE[option.kind](option))


def table_options(*names: str) -> tuple[Option, ...]:
    """The table's rows of these names, in the table's order."""
    unknown = set(names) - {option.name for option in table.OPTIONS}
    if unknown:
        raise KeyError(f"not options of the table: {sorted(unknown)}")
    return tuple(option for option in table.OPTIONS if option.name in names)
