"""The option table (sr_options.py) is what the engine's side of `infscene sr` is built from: the command line's
parser has exactly the table's options with its flags, defaults, choices and help; SROptions has its defaults;
the run checks its ranges with its words; and the families it names are the registry's. (The plugin's side is
walked in tests/plugin/test_option_forms.py.)"""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from infscene import sr_options
from infscene.commands import main as cli
from infscene.diffusion.fusion import FusionMode
from infscene.errors import InfSceneError
from infscene.models.registry import FAMILIES
from infscene.plan import SROptions, _check_options
from infscene.sr_options import OPTIONS, RUN, Option, help_text, options_in

RANGED = [option for option in options_in(RUN) if option.minimum is not None]
OPTION_BANDS = sr_options.OPTION["bands"]
LIBRARY_ONLY = {"memmap_above_bytes"}  # an SROptions field for tests and benchmarks, not an option of the command


def sr_parser() -> argparse.ArgumentParser:
    subcommands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subcommands.choices["sr"]


def test_the_command_line_has_exactly_the_tables_options_in_its_order() -> None:
    flags = [a.option_strings[0] for a in sr_parser()._actions if a.option_strings and a.dest != "help"]
    assert flags == [option.flag for option in OPTIONS]


@pytest.mark.parametrize("option", OPTIONS, ids=[o.name for o in OPTIONS])
def test_each_flag_has_the_tables_default_choices_and_help(option: Option) -> None:
    [action] = [a for a in sr_parser()._actions if option.flag in a.option_strings]
    assert action.dest == option.name
    assert action.help == help_text(option) and option.help in action.help
    assert action.default == option.default or (option.group and action.default is None)
    assert action.required is False
    assert tuple(action.choices or ()) == (option.values if option.kind == sr_options.CHOICE else ())
    if option.default is None and not option.group and option.auto:
        assert f"(default: {option.auto})" in action.help


def test_the_size_is_one_of_scale_and_target_resolution() -> None:
    size = [o.flag for o in OPTIONS if o.group == "size"]
    assert size == ["--scale", "--target-res"]
    with pytest.raises(cli.UsageError, match="one of the arguments --scale --target-res is required"):
        cli.build_parser().parse_args(["sr", "in.tif", "out.tif"])


def test_parsed_flags_become_sroptions() -> None:
    args = cli.build_parser().parse_args(["sr", "in.tif", "out.tif", "--scale", "3", "--no-lr-consistency", "--mode",
                                          "average", "--bands", "3,2,1", "--no-checkpoint", "--margin", "0"])
    options = cli.run_options(args)
    assert options == SROptions(scale=3.0, lr_consistency=False, mode=FusionMode.AVERAGE, bands=[3, 2, 1],
                                checkpoint=False, margin=0)
    target = cli.build_parser().parse_args(["sr", "a", "b", "--target-res", "0.6"])
    assert cli.run_options(target) == SROptions(target_res=0.6)


def test_sroptions_has_every_run_option_with_its_default() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(SROptions)}
    assert set(fields) - LIBRARY_ONLY == {o.name for o in options_in(RUN)}
    for option in options_in(RUN):
        expected = FusionMode(option.default) if option.name == "mode" else option.default
        assert fields[option.name] == expected, option.name


@pytest.mark.parametrize("option", RANGED, ids=[o.name for o in RANGED])
def test_the_run_refuses_what_lies_outside_the_tables_range_in_its_words(option: Option) -> None:
    step = 1 if option.kind == sr_options.INT else 0.01
    inside = ([option.maximum] if option.maximum is not None else []) + ([] if option.above_minimum else [option.minimum])
    for value in inside:
        _check_options(SROptions(**{option.name: value}))
    outside = [option.minimum if option.above_minimum else option.minimum - step]
    if option.maximum is not None:
        outside.append(option.maximum + step)
    for value in outside:
        with pytest.raises(InfSceneError) as err:
            _check_options(SROptions(**{option.name: value}))
        assert str(err.value) == option.problem(value) and option.range_text() in str(err.value)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("steps", 2001, "steps must be between 1 and 2000, got 2001"),
    ("seed", -1, "seed must be 0 or more, got -1"),
    ("batch_size", 0, "batch size must be between 1 and 4096 patches, got 0"),
    ("patch", 513, "patch size must be between 1 and 512 output pixels, got 513"),
    ("detail", float("nan"), "detail must be a number from 0 (faithful) to 1 (detailed), got nan"),
    ("detail", "0.5", "detail must be a number, got '0.5'"),
    ("margin", 4097, "margin must be between 0 and 4096 input pixels, got 4097"),
    ("threads_per_worker", 0, "threads per worker must be between 1 and 256, got 0"),
    ("scale", 1.0, "scale factor must be in (1, 16], got 1"),
])
def test_the_messages_say_the_range(name: str, value: object, message: str) -> None:
    with pytest.raises(InfSceneError) as err:
        _check_options(SROptions(**{name: value}))
    assert str(err.value) == message


def test_the_families_the_table_names_are_the_registrys() -> None:
    assert {o.family for o in OPTIONS if o.family} <= set(FAMILIES)
    steps = sr_options.OPTION["steps"].help.lower()
    assert all(family in steps for family in FAMILIES)  # what --steps means for each family


def test_every_choice_has_a_label_and_no_option_says_auto_with_a_sentinel() -> None:
    for option in OPTIONS:
        assert all(choice.label for choice in option.choices), option.name
        sentinel = not isinstance(option.default, bool) and option.default in (0, -1, "")
        assert not sentinel or option.minimum == option.default, option.name
        if option.default is None and option.kind not in (sr_options.PATH,) and not option.group:
            assert option.auto, f"{option.name}: say what None means"


WRONG_TYPES = {  # a value of another type than each kind takes, as a Python caller could give it
    sr_options.INT: ["3", 2.5, True], sr_options.FLOAT: ["4", True], sr_options.TEXT: [5],
    sr_options.CHOICE: [3], sr_options.PATH: [123], sr_options.BANDS: [[1.0, 2, 3], "1,2,x", [0, 1, 2], 5],
    sr_options.BOUNDS: [(1, 2, 3), "0 0 1 1", (0, 0, "x", 1)], sr_options.SWITCH: ["yes", None],
    sr_options.OFF_SWITCH: ["no", None],
}


@pytest.mark.parametrize("option", options_in(RUN), ids=[o.name for o in options_in(RUN)])
def test_a_value_of_the_wrong_type_is_refused_by_the_options_name(option: Option) -> None:
    """The Python API raised ValueError, TypeError or AttributeError for these, or took them (seed 1.5)."""
    for value in WRONG_TYPES[option.kind]:
        with pytest.raises(InfSceneError, match=f"^{option.noun or option.name.replace('_', ' ')} must be ") as err:
            _check_options(SROptions(**{option.name: value}))
        assert str(err.value) == option.problem(value), value


@pytest.mark.parametrize("name", [o.name for o in options_in(RUN) if o.default is not None])
def test_none_is_auto_only_where_the_default_is(name: str) -> None:
    with pytest.raises(InfSceneError, match=r"must be given \(its default is .*\), got None"):
        _check_options(SROptions(**{name: None}))


def test_bands_are_a_list_or_the_command_lines_text() -> None:
    assert sr_options.band_numbers([3, 2, 1, 4]) == sr_options.band_numbers("3, 2,1,4") == (3, 2, 1, 4)
    assert sr_options.band_numbers("3,,1") is None and sr_options.band_numbers([3, 2.0]) is None
    assert OPTION_BANDS.problem("3,2,1,4") is None and OPTION_BANDS.problem((3, 2, 1)) is None
