"""What one engine run should do, as plain data, and its command line.

The dock, the Processing algorithms and the settings all use these dataclasses, so the
defaults and the mapping to the engine's CLI flags exist exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from .protocol import MAX_SAMPLES, MAX_STEPS, MODES, SCALE_MAX, SCALE_MIN_EXCLUSIVE  # noqa: F401 - the engine's limits and choices

MODE_LABELS: Tuple[str, ...] = (
    "Variance-corrected fusion (seamless)",
    "Average overlapping patches",
    "Independent patches (shows seams)",
)
DEVICES: Tuple[str, ...] = ("auto", "cpu", "cuda")
DEVICE_LABELS: Tuple[str, ...] = ("Auto (every GPU if available)", "CPU", "CUDA (every GPU)")

Bounds = Tuple[float, float, float, float]
PATCH_AUTO = 0
OVERLAP_AUTO = -1
# The model's own number of steps (SR3 50, e2diffsr its T = 4): `--steps` is then left out, since a
# fixed number would be refused by a family that runs fewer.
STEPS_MODEL_DEFAULT = 0
# --detail's ends (e2diffsr models): the regression branch alone, and the full model (latent diffusion plus the
# texture head's whole drawing). None in SrOptions leaves it to the model's config.json (`default_detail`).
DETAIL_FAITHFUL = 0.0
DETAIL_DETAILED = 1.0


@dataclass
class SrOptions:
    """The tunable knobs of a super-resolution run (persisted by the dock between sessions).

    `target_res` > 0 asks for that output pixel size in the layer's units and overrides `scale`.
    `bands` is empty for "detect from band descriptions" or e.g. "3,2,1,4" (1-based, R,G,B[,NIR]).
    `patch` and `overlap` are in output pixels; PATCH_AUTO / OVERLAP_AUTO leave them to the engine
    (the model's training size, a quarter of the patch), which knows the model; so does
    STEPS_MODEL_DEFAULT for `steps`. `samples` > 1 runs that many seeds and also writes their
    per-pixel spread; `detail` (e2diffsr models) goes from DETAIL_FAITHFUL (the regression branch alone) to
    DETAIL_DETAILED (the full model's drawn texture), None: the model's default. `dask` runs the
    model work on a Dask cluster (a scheduler address, or local:N worker processes); empty: this machine.
    """

    scale: float = 4.0
    target_res: float = 0.0
    steps: int = STEPS_MODEL_DEFAULT
    patch: int = 0
    overlap: int = -1
    mode: str = "vcf"
    seed: int = 0
    device: str = "auto"
    bands: str = ""
    samples: int = 1
    detail: Optional[float] = None
    dask: str = ""


@dataclass
class SrRequest:
    """One `infscene sr` run: input file, output file(s), area and options.

    `spread_path` names the spread raster of several samples; None puts it beside the output.
    """

    input_path: str
    output_path: str
    options: SrOptions = field(default_factory=SrOptions)
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
        opts = self.options
        args = ["sr", self.input_path, self.output_path, *_size_flags(opts)]
        if self.bounds is not None:
            args += ["--bounds", *(_num(v) for v in self.bounds)]
        if opts.steps != STEPS_MODEL_DEFAULT:
            args += ["--steps", str(opts.steps)]
        if opts.patch != PATCH_AUTO:
            args += ["--patch", str(opts.patch)]
        if opts.overlap != OVERLAP_AUTO:
            args += ["--overlap", str(opts.overlap)]
        args += [
            "--mode", opts.mode,
            "--seed", str(opts.seed),
            "--device", opts.device,
        ]
        spread = self.spread_output()
        if spread is not None:
            args += ["--samples", str(opts.samples), "--spread", spread]
        if opts.detail is not None:
            args += ["--detail", _num(opts.detail)]
        if opts.dask.strip():
            args += ["--dask", opts.dask.strip()]
        args.append("--no-checkpoint")  # the plugin does not resume runs: nothing to save at each step
        args += _common_flags(opts.bands, self.model_dir)
        if self.iceplant_path:
            args += ["--iceplant", self.iceplant_path]
        if self.dry_run:
            args.append("--dry-run")
        return args


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
    options: SrOptions = field(default_factory=SrOptions)
    model_dir: Optional[str] = None
    cache_dir: Optional[str] = None

    def arguments(self) -> List[str]:
        """Arguments after `python -m infscene`."""
        opts = self.options
        args = ["serve", self.input_path, "--port", "0", *_size_flags(opts), "--seed", str(opts.seed)]
        if opts.detail is not None:
            args += ["--detail", _num(opts.detail)]
        if self.model_dir:
            args += ["--model", self.model_dir]
        if self.cache_dir:
            args += ["--cache", self.cache_dir]
        return args + ["--progress", "json"]


def _size_flags(opts: SrOptions) -> List[str]:
    """--target-res when a pixel size is asked for (it overrides the scale), else --scale."""
    if opts.target_res > 0:
        return ["--target-res", _num(opts.target_res)]
    return ["--scale", _num(opts.scale)]


def _common_flags(bands: str, model_dir: Optional[str]) -> List[str]:
    args: List[str] = []
    if bands.strip():
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
