"""What one engine run should do, as plain data, and its command line.

The dock, the Processing algorithms and the settings all use these dataclasses. SrOptions' fields, their
defaults and the flags they become are the option table's (sr_options.py, the engine's own, byte for byte), so
an option the table gives to the plugin's forms needs no line here.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

from .sr_options import BANDS, FLOAT, INT, Option, plugin_options

Bounds = Tuple[float, float, float, float]

SrOptions = make_dataclass("SrOptions", [(o.name, Any, field(default=o.form_default)) for o in plugin_options()])
SrOptions.__doc__ = """The options of a super-resolution run that the plugin's forms set (persisted by the dock between
sessions): one field per option of the table that appears in the panel or in Processing, None for "auto" (the model's
or the engine's own choice). `target_res`, when given, overrides `scale`; `bands` is text such as "3,2,1,4"."""
# The options that decide what a live layer's tile looks like; `infscene serve` takes these flags as `sr` does.
SERVE_OPTIONS = ("seed", "detail")
# The options the planning call (`python -m infscene.quick_plan`) checks besides the size, the extent and the model.
PLAN_OPTIONS = ("bands", "samples", "detail")


@dataclass
class SrRequest:
    """One `infscene sr` run: input file, output file(s), area and options.

    `spread_path` names the spread raster of several samples; None puts it beside the output.
    """

    input_path: str
    output_path: str
    options: Any = field(default_factory=SrOptions)
    bounds: Optional[Bounds] = None
    iceplant_path: Optional[str] = None
    model_dir: Optional[str] = None
    dry_run: bool = False
    spread_path: Optional[str] = None

    def spread_output(self) -> Optional[str]:
        """Where this run writes its spread raster: None with one sample (there is no spread)."""
        if self.options.samples <= 1:
            return None
        return self.spread_path or spread_path_for(self.output_path)

    def arguments(self) -> List[str]:
        """Arguments after `python -m infscene`."""
        args = ["sr", self.input_path, self.output_path, *size_flags(self.options), *self._bounds_flags()]
        args += option_flags(self.options)
        spread = self.spread_output()
        if spread is not None:
            args += ["--spread", spread]
        args.append("--no-checkpoint")  # the plugin does not resume runs: nothing to save at each step
        args += _common_flags(None, self.model_dir)
        if self.iceplant_path:
            args += ["--iceplant", self.iceplant_path]
        if self.dry_run:
            args.append("--dry-run")
        return args

    def planning_arguments(self) -> List[str]:
        """Arguments after `python -m infscene.quick_plan`: the torch-free checks of this run (the output may still be
        unnamed; the iceplant output's name does not change what is checked)."""
        args = [self.input_path, *([self.output_path] if self.output_path else []), *size_flags(self.options),
                *self._bounds_flags(), *option_flags(self.options, PLAN_OPTIONS)]
        if self.model_dir:
            args += ["--model", self.model_dir]
        if self.iceplant_path:
            args.append("--iceplant")
        return args

    def _bounds_flags(self) -> List[str]:
        return [] if self.bounds is None else ["--bounds", *(_num(v) for v in self.bounds)]


@dataclass
class IceplantRequest:
    """One `infscene iceplant` run: a 0-1 iceplant probability raster from the input."""

    input_path: str
    output_path: str
    bands: str = ""
    model_dir: Optional[str] = None

    def arguments(self) -> List[str]:
        """Arguments after `python -m infscene`."""
        return ["iceplant", self.input_path, self.output_path, *_common_flags(self.bands, self.model_dir)]


@dataclass
class ServeRequest:
    """One `infscene serve` tile server: XYZ tiles of `input_path`, super-resolved on demand, on a free local port.

    It takes the run options that decide what a tile looks like (scale or target pixel size, seed, detail) and the
    model; the others (patch, fusion, device, samples) are the server's own business. `cache_dir` keeps rendered tiles.
    """

    input_path: str
    options: Any = field(default_factory=SrOptions)
    model_dir: Optional[str] = None
    cache_dir: Optional[str] = None

    def arguments(self) -> List[str]:
        """Arguments after `python -m infscene`."""
        args = ["serve", self.input_path, "--port", "0", *size_flags(self.options),
                *option_flags(self.options, SERVE_OPTIONS)]
        if self.model_dir:
            args += ["--model", self.model_dir]
        if self.cache_dir:
            args += ["--cache", self.cache_dir]
        return args + ["--progress", "json"]


def option_flags(options: Any, names: Optional[Tuple[str, ...]] = None) -> List[str]:
    """The flags of every option (or of those `names`) that differs from the engine's default (the scale and the
    target pixel size, one of which the command needs, come from size_flags)."""
    args: List[str] = []
    for option in plugin_options():
        value = getattr(options, option.name)
        chosen = names is None or option.name in names
        if chosen and not option.group and value is not None and value != option.default:
            text = flag_value(option, value)
            if text:
                args += [option.flag, text]
    return args


def flag_value(option: Option, value: Any) -> str:
    """A value as the command line takes it ("" for empty text: the flag is left out)."""
    if option.kind == FLOAT:
        return _num(value)
    if option.kind == INT:
        return str(int(value))
    text = str(value).strip()
    return text.replace(" ", "") if option.kind == BANDS else text


def size_flags(opts: Any) -> List[str]:
    """--target-res when a pixel size is asked for (it overrides the scale), else --scale."""
    if opts.target_res is not None:
        return ["--target-res", _num(opts.target_res)]
    return ["--scale", _num(opts.scale)]


def _common_flags(bands: Optional[str], model_dir: Optional[str]) -> List[str]:
    args: List[str] = []
    if bands and bands.strip():
        args += ["--bands", bands.replace(" ", "")]
    if model_dir:
        args += ["--model", model_dir]
    args += ["--progress", "json"]
    return args


def _num(value: float) -> str:
    """Full precision without a trailing '.0' on whole numbers (`repr` keeps every digit)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def iceplant_path_for(output_path: str) -> str:
    """The probability file that goes with an SR output: `<stem>_iceplant.tif` beside it."""
    return _beside(output_path, "iceplant")


def spread_path_for(output_path: str) -> str:
    """The spread raster that goes with an SR output of several samples: `<stem>_spread.tif` beside it
    (the engine's own default, named here so the plugin knows which file to load)."""
    return _beside(output_path, "spread")


def _beside(output_path: str, suffix: str) -> str:
    out = Path(output_path)
    return str(out.with_name(f"{out.stem}_{suffix}.tif"))
