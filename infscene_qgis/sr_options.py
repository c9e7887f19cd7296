"""The options of `infscene sr`, written once for the engine and the QGIS plugin.

One option used to live in about eleven places (the flag, its parsing, SROptions, its check, the plugin's
request and arguments, the dock's widget, its load and save, the Processing parameter and its reading), with
defaults, ranges and help texts that drifted apart (the plugin offered patches the engine refused). Each row of
OPTIONS below says everything about one option: its flag, kind, default, range, choices with their labels, help,
unit, the family that takes it and where it appears. The command line's parser, SROptions' defaults and range
checks, the plugin's options and arguments, the dock's widgets and the Processing parameters are all built from
it, and tests/test_sr_options.py walks it against each of them.

"Auto" (the model's or the engine's own choice) is None everywhere, never 0, -1 or "".

Like protocol.py this module uses the standard library only and keeps to Python 3.7 syntax: the plugin ships a
byte-identical copy (infscene_qgis/sr_options.py, kept identical by a test) and must never import the engine.
"""
import numbers
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .protocol import (
    MAX_BATCH,
    MAX_PATCH,
    MAX_SAMPLES,
    MAX_STEPS,
    MAX_THREADS_PER_WORKER,
    MODES,
    PRECISIONS,
    PROGRESS_KINDS,
    SCALE_MAX,
    SCALE_MIN_EXCLUSIVE,
)

MAX_MARGIN = 4096  # input pixels of context on each side (a default e2diffsr run's dependency cone is 336 at 4x)

# Kinds of value: each maps to one argparse type, one settings format and one kind of widget and parameter.
INT = "int"
FLOAT = "float"
TEXT = "text"  # free text; with choices, the forms offer those and the command line takes others too
CHOICE = "choice"  # one of `choices`, nothing else
PATH = "path"
BANDS = "bands"  # 1-based band numbers, "3,2,1,4"
BOUNDS = "bounds"  # four numbers: MINX MINY MAXX MAXY
SWITCH = "switch"  # a flag that turns the option on (default False)
OFF_SWITCH = "off_switch"  # a flag (--no-...) that turns an option off (default True)

# Where an option appears besides the command line (every option is one of `infscene sr`).
RUN = "run"  # a field of the engine's SROptions (the others belong to the command: side outputs, progress)
DOCK = "dock"  # a widget of the QGIS panel
PROCESSING = "processing"  # a parameter of the Processing algorithm "Super-resolve raster"
ADVANCED = "advanced"  # that parameter is under the dialog's "Advanced parameters"


@dataclass(frozen=True)
class Choice:
    """One value of an option with choices, and the words the plugin's forms show for it."""

    value: str
    label: str


@dataclass(frozen=True)
class Option:
    """One option of `infscene sr`: everything the command line, the engine and the plugin need to know of it."""

    name: str  # SROptions' field, the plugin's SrOptions field, argparse's dest; NAME is the Processing parameter
    flag: str
    kind: str
    help: str  # what it does: the command line's help, the plugin's tooltip and Processing help
    label: str = ""  # the forms' label
    default: Any = None  # None: auto, the model's or the engine's own choice
    auto: str = ""  # what the default means, in a few words (a form shows it in place of the value)
    initial: Any = None  # where a form starts when the command line has no default (the scale: 4)
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    above_minimum: bool = False  # the minimum itself is refused (a scale must be more than 1)
    ends: Tuple[str, str] = ("", "")  # words for the two ends of the range (detail: faithful, detailed)
    step: Optional[float] = None  # a form's step for a fractional number
    decimals: int = 0  # a form's decimals for a fractional number
    choices: Tuple[Choice, ...] = ()
    unit: str = ""  # of the value, in messages and help ("output pixels")
    suffix: str = ""  # after the number in the panel (" px")
    noun: str = ""  # the option in messages (default: its name in words)
    family: str = ""  # the only model family that takes it ("": every family)
    places: Tuple[str, ...] = (RUN,)
    group: str = ""  # the command line requires exactly one option of a group
    metavar: Any = None

    @property
    def form_default(self) -> Any:
        """The value a form starts at: the default, or `initial` where the command line has none."""
        return self.initial if self.default is None else self.default

    @property
    def values(self) -> Tuple[str, ...]:
        return tuple(choice.value for choice in self.choices)

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(choice.label for choice in self.choices)

    def range_text(self) -> str:
        """The range in words, as messages say it: "between 1 and 512 output pixels", "0 or more"."""
        low, high = self.minimum, self.maximum
        if self.ends[0]:
            return "a number from {:g} ({}) to {:g} ({})".format(low, self.ends[0], high, self.ends[1])
        if self.above_minimum:
            return "in ({:g}, {:g}]".format(low, high) if high is not None else "more than {:g}".format(low)
        if high is None:
            return "{:g} or more".format(low)
        return "between {:g} and {:g}{}".format(low, high, " " + self.unit if self.unit else "")

    @property
    def words(self) -> str:
        """The option in messages: "batch size", "scale factor"."""
        return self.noun or self.name.replace("_", " ")

    def problem(self, value: Any) -> Optional[str]:
        """Why `value` is not one this option takes, whatever the raster and the model (None: it is).

        The value's type is checked first, as the engine's Python callers give it (the command line and the plugin
        parse text into these types): a value of another type passed a range check and crashed later, or compared
        text with numbers. None is "auto", taken only by options whose default is None."""
        if value is None:
            return None if self.default is None else "{} must be given (its default is {}), got None".format(
                self.words, self.default)
        problem = _TYPE_PROBLEMS[self.kind](self, value)
        if problem is not None:
            return problem
        if self.choices and self.kind == CHOICE and value not in self.values:
            return "{} must be one of {}, got {}".format(self.words, ", ".join(self.values), value)
        if self.minimum is None:
            return None
        inside = self.minimum < value if self.above_minimum else self.minimum <= value
        if not (inside and (self.maximum is None or value <= self.maximum)):
            shown = "{:g}".format(value) if isinstance(value, float) else value
            return "{} must be {}, got {}".format(self.words, self.range_text(), shown)
        return None

    def appears_in(self, place: str) -> bool:
        return place in self.places

    def family_problem(self, family: str) -> Optional[str]:
        """Why a model of `family` cannot take this option at all (None: it can)."""
        if not self.family or family == self.family:
            return None
        return "this model is {}: only {} models take {}".format(family.upper(), self.family, self.flag)


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def band_numbers(value: Any) -> Optional[Tuple[int, ...]]:
    """1-based band numbers from a list of whole numbers or from text such as "3,2,1,4" (the command line's and the
    plugin's form); None for anything else."""
    if isinstance(value, str):
        parts = value.replace(" ", "").split(",")
        return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else None
    if isinstance(value, (list, tuple)) and all(_is_whole(band) for band in value):
        return tuple(int(band) for band in value)
    return None


def _type_problem(expected: str, fits: Any) -> Any:
    """A check that `value` is of a kind's type: None, or "<option> must be <expected>, got <value>"."""
    return lambda option, value: None if fits(value) else "{} must be {}, got {!r}".format(option.words, expected, value)


_TYPE_PROBLEMS = {
    INT: _type_problem("a whole number", _is_whole),
    FLOAT: _type_problem("a number", _is_number),
    TEXT: _type_problem("text", lambda value: isinstance(value, str)),
    CHOICE: lambda option, value: None,  # any value that is not one of the choices is refused by name
    PATH: _type_problem("a path", lambda value: isinstance(value, (str, os.PathLike))),
    BANDS: _type_problem('band numbers such as [3, 2, 1, 4] or "3,2,1,4"',
                         lambda value: band_numbers(value) is not None and min(band_numbers(value), default=0) >= 1),
    BOUNDS: _type_problem("four numbers, (minx, miny, maxx, maxy)",
                          lambda value: isinstance(value, (list, tuple)) and len(value) == 4
                          and all(_is_number(v) for v in value)),
    SWITCH: _type_problem("True or False", lambda value: isinstance(value, bool)),
    OFF_SWITCH: _type_problem("True or False", lambda value: isinstance(value, bool)),
}

PANEL = (RUN, DOCK, PROCESSING)  # on the command line, in the panel and in Processing

OPTIONS: Tuple[Option, ...] = (
    Option("scale", "--scale", FLOAT, "scale factor, e.g. 5 for 3 m -> 0.6 m; non-integer allowed",
           label="Scale factor", initial=4.0, minimum=SCALE_MIN_EXCLUSIVE, maximum=SCALE_MAX, above_minimum=True,
           step=0.5, decimals=2, suffix=" x", noun="scale factor", places=PANEL, group="size"),
    Option("target_res", "--target-res", FLOAT,
           "output pixel size in the raster's CRS units (e.g. 0.6 for metres); overrides the scale factor",
           label="Target pixel size", auto="use scale factor", minimum=0.0, above_minimum=True, step=0.1,
           decimals=4, unit="layer units", noun="target pixel size", places=PANEL, group="size"),
    Option("bounds", "--bounds", BOUNDS, "only this extent, in the raster's CRS", auto="the whole raster",
           metavar=("MINX", "MINY", "MAXX", "MAXY")),
    Option("bands", "--bands", BANDS, "1-based band numbers in R,G,B[,extra] order, e.g. 3,2,1,4 for Planet analytic; "
           "other bands are kept and guided by the visible ones", label="Bands R,G,B[,NIR]",
           auto="from band descriptions", places=PANEL),
    Option("steps", "--steps", INT, "reverse diffusion steps K; more is slower and finer (SR3: 50 by default; "
           "e2diffsr: at most its T = 4, its default)", label="Diffusion steps", auto="model default",
           minimum=1, maximum=MAX_STEPS, places=PANEL),
    Option("patch", "--patch", INT, "side of the square patches the model sees; larger patches give more context "
           "per call and use more memory", label="Patch size", auto="model's training size", minimum=1,
           maximum=MAX_PATCH, unit="output pixels", suffix=" px", noun="patch size", places=PANEL),
    Option("overlap", "--overlap", INT, "output pixels shared by neighbouring patches, fused at every step so no seam "
           "shows; at most half the patch", label="Overlap", auto="a quarter of the patch", minimum=1,
           maximum=MAX_PATCH // 2, unit="output pixels", suffix=" px", places=PANEL),
    Option("mode", "--mode", CHOICE, "how overlapping patches are combined: vcf, variance-corrected joint denoising "
           "(seamless, sharp); average, a weighted mean (seamless, blurred); independent, separate tiles (seams, "
           "the SR3 baseline)", label="Patch fusion", default=MODES[0], places=PANEL, choices=(
               Choice(MODES[0], "Variance-corrected fusion (seamless)"),
               Choice(MODES[1], "Average overlapping patches"),
               Choice(MODES[2], "Independent patches (shows seams)"))),
    Option("seed", "--seed", INT, "random seed; the same seed gives the same bytes on any number of threads, "
           "devices or Dask workers", label="Random seed", default=0, minimum=0, places=PANEL),
    Option("margin", "--margin", INT, "input pixels of context sampled around the extent, so that runs of "
           "neighbouring extents of one raster join without a seam; 0 samples the extent alone",
           label="Context margin", auto="one patch", minimum=0, maximum=MAX_MARGIN, unit="input pixels",
           suffix=" px", places=(RUN, PROCESSING, ADVANCED)),
    Option("device", "--device", TEXT, "where the model runs: auto (every GPU, else the CPU), cpu (one lane per "
           "thread), cuda (every GPU) or a list such as cuda:0,cuda:1; patch batches are spread over them, the "
           "result is the same", label="Device", default="auto", places=PANEL, choices=(
               Choice("auto", "Auto (every GPU if available)"), Choice("cpu", "CPU"),
               Choice("cuda", "CUDA (every GPU)"))),
    Option("batch_size", "--batch-size", INT, "patches per model call (GPU memory ~ batch x patch)", default=4,
           minimum=1, maximum=MAX_BATCH, unit="patches", noun="batch size"),
    Option("samples", "--samples", INT, "run this many seeds (seed, seed+1, ...): the output is the first, and a "
           "raster of the per-pixel spread over all of them maps where the model invents detail; each costs a whole "
           "run", label="Samples", default=1, auto="1 (no spread map)", minimum=1, maximum=MAX_SAMPLES, places=PANEL),
    Option("spread_path", "--spread", PATH, "where the spread raster of --samples goes", auto="OUTPUT_spread.tif"),
    Option("detail", "--detail", FLOAT, "e2diffsr: 0 (faithful: the regression branch alone, fastest) to 1 "
           "(detailed: the latent diffusion and the texture head's full drawing); values between scale the drawn "
           "texture (a model without a texture head takes only 0 or 1)", label="Detail",
           auto="model default", minimum=0.0, maximum=1.0, ends=("faithful", "detailed"), step=0.05, decimals=2,
           family="e2diffsr", places=(RUN, DOCK, PROCESSING, ADVANCED)),
    Option("self_ensemble", "--self-ensemble", SWITCH, "e2diffsr at --detail 0: decode the scene under the 8 flips "
           "and rotations of the square, turn each back and average them (then the LR-consistency): +0.05 dB measured "
           "at 4x, for 8 times the decode (docs/benchmarks.md, \"Self-ensemble at detail 0\")", default=False,
           family="e2diffsr"),
    Option("regression_only", "--regression-only", SWITCH, "the old name of --detail 0", default=False, places=()),
    Option("precision", "--precision", CHOICE, "arithmetic of the model calls: bf16 (autocast, float32 weights and "
           "state; convolutions 2-3x faster on CPUs with native bf16, a whole run at most 1.2x; outputs within "
           "0.01 dB), fp32, or auto: bf16 on such CPUs, else fp32", default=PRECISIONS[0], choices=(
               Choice(PRECISIONS[0], "Auto (bf16 where the CPU has it)"), Choice(PRECISIONS[1], "fp32"),
               Choice(PRECISIONS[2], "bf16 (autocast)"))),
    Option("lr_consistency", "--no-lr-consistency", OFF_SWITCH, "do not tie each step's low frequencies to the input "
           "(pure SR3 sampling; drifts in colour)", default=True),
    Option("model_dir", "--model", PATH, "model folder", auto="the bundled e2diffsr model"),
    Option("work_dir", "--work-dir", PATH, "folder for the run's checkpoint and the memory-mapped canvases of large "
           "runs; with --dask, one that every worker reaches", auto="the output's folder"),
    Option("resume", "--resume", SWITCH, "continue the interrupted run of this output from its checkpoint (same "
           "input, model and options)", default=False),
    Option("restart", "--restart", SWITCH, "discard the checkpoint an interrupted run of this output left",
           default=False),
    Option("checkpoint", "--no-checkpoint", OFF_SWITCH, "keep no checkpoint: nothing is saved at each step, and an "
           "interrupted run starts over", default=True),
    Option("dask", "--dask", TEXT, "run the model work on a Dask cluster: a scheduler address (tcp://host:8786), a "
           "scheduler file (.json), or local:N for N local worker processes; the output is the same as without, and "
           "the work folder must be one every worker reaches; an address where no Dask scheduler answers within 5 s "
           "is refused", label="Dask cluster", auto="this machine",
           metavar="ADDRESS", places=(RUN, PROCESSING, ADVANCED)),
    Option("threads_per_worker", "--threads-per-worker", INT, "threads of each local:N Dask worker", default=1,
           minimum=1, maximum=MAX_THREADS_PER_WORKER),
    Option("preview", "--preview", PATH, "also write a side-by-side PNG of the input, its bicubic enlargement and the "
           "output", places=()),
    Option("iceplant", "--iceplant", PATH, "also write the iceplant probability (0-1) of the super-resolved result to "
           "this GeoTIFF", metavar="PROB_OUTPUT", places=()),
    Option("progress", "--progress", CHOICE, "bar: a progress bar on stderr; json: JSON-lines events on stdout (what "
           "the plugin reads); none: quiet", default=PROGRESS_KINDS[0], places=(), choices=(
               Choice(PROGRESS_KINDS[0], "Progress bar"), Choice(PROGRESS_KINDS[1], "JSON events"),
               Choice(PROGRESS_KINDS[2], "None"))),
    Option("dry_run", "--dry-run", SWITCH, "check the input and print the plan; write nothing", default=False,
           places=()),
)
OPTION: Dict[str, Option] = {option.name: option for option in OPTIONS}


def detail_problem(family: str, texture_head: bool, detail: Optional[float]) -> Optional[str]:
    """Why a model cannot take `detail` (None: it can; it always takes None, its own default): a model of another
    family takes none, and an e2diffsr model without a texture head only the two ends, 0 and 1. The engine refuses
    a run with this message and the planning call reports it, so the panel shows the engine's own rule."""
    if detail is None:
        return None
    problem = OPTION["detail"].family_problem(family)
    if problem is None and not texture_head and 0.0 < detail < 1.0:
        problem = ("a detail between 0 and 1 needs an e2diffsr model with a texture head (texture_channels in its "
                   "config.json); this one takes only 0 or 1, got {:g}".format(detail))
    return problem


def options_in(place: str) -> Tuple[Option, ...]:
    """The options that appear in `place` (RUN, DOCK, PROCESSING), in the table's order."""
    return tuple(option for option in OPTIONS if option.appears_in(place))


def plugin_options() -> Tuple[Option, ...]:
    """The options the plugin's forms set: the panel's and the Processing algorithm's."""
    return tuple(option for option in OPTIONS if option.appears_in(DOCK) or option.appears_in(PROCESSING))


def help_text(option: Option) -> str:
    """The command line's help of an option: what it does, and its default in words or as a value."""
    if option.group or option.kind in (SWITCH, OFF_SWITCH):
        return option.help
    default = option.auto if option.default is None else str(option.default)
    return "{} (default: {})".format(option.help, default) if default else option.help
