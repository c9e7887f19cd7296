"""The fast planning call: every check that needs neither torch nor the model's weights, in well under a second.

`python -m infscene.quick_plan INPUT [OUTPUT] --scale 4 --bounds ... [--iceplant]` prints one JSON line, a
protocol.QuickPlan event:
the input window and the output grid exactly as `infscene sr` will make them (raster.io's own functions), the
output's size on disk, the free disk space, the model's family and what it accepts (config.json read as JSON, no
network built), what stops the run (`problems`), what the user should know (`warnings`) and why an option cannot
apply (`unavailable`: option -> reason). The QGIS panel calls it whenever the layer, the extent or an option
changes, so the size it shows is the engine's and the checks come before Run; `infscene sr --dry-run` remains the
full check (model load and timing). Importing this module imports rasterio and numpy, never torch.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import InfSceneError
from .modelformat.contract import ModelContract
from .modelformat.files import DEFAULT_MODEL_DIR, FAMILY_WHEN_ABSENT, WEIGHTS_FILE, read_raw_config
from .option_flags import add_option_flags, table_options
from .protocol import ModelSummary, QuickPlan, event_line
from .raster.atomic import check_free_space, check_output_path, refuse_overwriting_input
from .raster.geometry import RunGeometry, plan_geometry
from .raster.io import is_georeferenced, open_raster, profile_bytes, resolve_bands, spread_profile, written_bytes
from .sr_options import OPTION, detail_problem

from .iceplant.model import DEFAULT_MODEL_DIR as ICEPLANT_MODEL_DIR


def model_summary(folder: Path) -> ModelSummary:
    """What the panel needs to know of a model folder, from its config.json alone (no weights read): its family and
    the fields that say what it accepts, a field the config leaves out being the contract's default."""
    raw, path = read_raw_config(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise InfSceneError(f"the model folder has no {WEIGHTS_FILE}: {folder}")
    default = ModelContract()
    try:
        return ModelSummary(
            path=str(folder), name=str(raw.get("name") or folder.name), family=str(raw.get("family") or FAMILY_WHEN_ABSENT),
            trained=bool(raw.get("trained", default.trained)), patch_size=int(raw.get("patch_size", default.patch_size)),
            scale_min=float(raw.get("scale_min", default.scale_min)), scale_max=float(raw.get("scale_max", default.scale_max)),
            texture_head=bool(raw.get("texture_channels")), default_detail=float(raw.get("default_detail", 1.0)),
            diffusion_steps=_optional(int, raw.get("diffusion_steps")),
            train_pixel_size_m=_optional(float, raw.get("train_pixel_size_m", default.train_pixel_size_m)))
    except (TypeError, ValueError) as exc:
        raise InfSceneError(f"invalid model config {path}: {exc}") from exc


def _optional(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


def iceplant_problem(ds: Any, bands: Optional[Sequence[int]]) -> Optional[str]:
    """Why the iceplant probability of the super-resolved result cannot be made (None: it can).

    The result keeps the input's data type, and the iceplant model reads 8-bit values: a result of any other type
    can leave 0-255 where the model adds detail (an int16 input of 0-234 gave -6 to 234), so only an 8-bit input
    is accepted before the run, instead of refusing the probability after the super-resolution has run.
    """
    if ds.count < 3:
        return f"the raster has {ds.count} band(s); the iceplant model needs red, green and blue"
    if bands is not None and len(bands) not in (3, 4):
        return f"the iceplant model reads R,G,B[,NIR]: {len(bands)} bands are chosen"
    layout = resolve_bands(ds, bands)
    if bands is None and len(layout.extra) > 1:
        return f"the raster has {len(layout.extra)} bands besides red, green and blue: say which is NIR in Bands"
    dtypes = sorted({str(ds.dtypes[b - 1]) for b in [*layout.visible, *layout.extra]})
    if dtypes != ["uint8"]:
        return (f"the iceplant model needs 8-bit values and this layer is {', '.join(dtypes)}: the super-resolved "
                "values can leave 0-255; convert the layer to 8 bits first (gdal_translate -ot Byte -scale)")
    if not (ICEPLANT_MODEL_DIR / "rgb.safetensors").is_file():
        return f"no iceplant model in {ICEPLANT_MODEL_DIR}"
    return None


def quick_plan(input_path: str, output_path: Optional[str] = None, scale: Optional[float] = None,
               target_res: Optional[float] = None, bounds: Optional[Sequence[float]] = None,
               bands: Optional[Sequence[int]] = None, model_dir: Optional[Path] = None, samples: int = 1,
               detail: Optional[float] = None, iceplant: bool = False) -> QuickPlan:
    """The plan's checks and sizes; never raises for bad input (it is reported in `problems`)."""
    started = time.perf_counter()
    answer = _Answer()
    model = _model(Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR, detail, answer)  # as sr does
    checked = {"samples": samples, "detail": detail, "scale": scale, "target_res": target_res}
    option_problems = {name: OPTION[name].problem(value) for name, value in checked.items()}
    answer.problems.extend(problem for problem in option_problems.values() if problem is not None)
    if samples > 1 and detail == 0.0:
        answer.warnings.append("at detail 0 every sample is the same: the spread is 0 everywhere")
    size_ok = option_problems["scale"] is None and option_problems["target_res"] is None
    contract = ModelContract(scale_min=model.scale_min, scale_max=model.scale_max) if model else ModelContract()
    try:
        with open_raster(input_path) as ds:
            _raster(ds, bands, iceplant, answer)
            if size_ok:
                _geometry(plan_geometry(ds, bounds, bands, scale, target_res, contract), ds, samples, answer)
    except InfSceneError as exc:
        answer.problems.append(str(exc))
    if output_path:
        _disk(input_path, output_path, answer)
    return QuickPlan(tuple(answer.problems), tuple(answer.warnings), answer.unavailable, model,
                     seconds=round(time.perf_counter() - started, 3), **answer.found)


@dataclass
class _Answer:
    """The planning call's findings as they are made: QuickPlan's lists, and its other fields by name."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)
    need_bytes: int = 0  # the disk the outputs take while written (raster.io.written_bytes)


def _model(folder: Path, detail: Optional[float], answer: _Answer) -> Optional[ModelSummary]:
    """The model's summary (None where it cannot be read: a problem), and what it cannot take."""
    try:
        model = model_summary(folder)
    except InfSceneError as exc:
        answer.problems.append(str(exc))
        return None
    if not model.trained:
        answer.warnings.append(f"the model '{model.name}' is not trained: the result will be noise")
    takes_none = OPTION["detail"].family_problem(model.family)
    if takes_none is not None:
        answer.unavailable["detail"] = takes_none
    problem = detail_problem(model.family, model.texture_head, detail)
    if problem is not None:
        answer.problems.append(problem)
    return model


def _raster(ds: Any, bands: Optional[Sequence[int]], iceplant: bool, answer: _Answer) -> None:
    answer.found.update(georeferenced=is_georeferenced(ds), input_size=(ds.width, ds.height),
                        dtype=str(ds.dtypes[0]))
    if iceplant or ds.count >= 3:
        reason = iceplant_problem(ds, bands)
        if reason is not None:
            answer.unavailable["iceplant"] = reason
            if iceplant:
                answer.problems.append(reason)


def _geometry(geometry: RunGeometry, ds: Any, samples: int, answer: _Answer) -> None:
    window = geometry.window
    answer.warnings.extend(geometry.notes)
    answer.found.update(
        window=(int(window.col_off), int(window.row_off), int(window.width), int(window.height)),
        output_size=(geometry.width, geometry.height), scale=geometry.scale,
        output_pixel_size=abs(ds.transform.a) * window.width / geometry.width, output_bytes=geometry.output_bytes,
        spread_bytes=profile_bytes(spread_profile(geometry.profile)) if samples > 1 else 0)
    answer.need_bytes = written_bytes(geometry.profile, samples > 1)


def _disk(input_path: str, output_path: str, answer: _Answer) -> None:
    """The output path's checks and the free space where it goes."""
    try:
        refuse_overwriting_input(input_path, {"output": output_path})
        out = check_output_path(output_path) if Path(output_path).parent.is_dir() else None
        folder = out.parent if out is not None else _existing_parent(Path(output_path))
        answer.found["disk_free"] = shutil.disk_usage(folder).free
        check_free_space([(folder, answer.need_bytes)])  # as `infscene sr` checks its outputs, in its words
    except (InfSceneError, OSError) as exc:
        answer.problems.append(str(exc))


def _existing_parent(path: Path) -> Path:
    """The nearest folder that exists above `path` (the panel creates the output folder when it runs)."""
    for parent in path.parents:
        if parent.is_dir():
            return parent
    return Path(".")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The input, the output and the table's flags of the options this call checks (as `infscene sr` takes them)."""
    parser.add_argument("input")
    parser.add_argument("output", nargs="?")
    add_option_flags(parser, table_options("scale", "target_res", "bounds", "bands", "samples", "detail", "model_dir"),
                     one_size_required=True)
    parser.add_argument("--iceplant", action="store_true", help="the run also writes the iceplant probability")


def run(args: argparse.Namespace) -> int:
    plan = quick_plan(args.input, args.output, args.scale, args.target_res, args.bounds, args.bands, args.model_dir,
                      args.samples, args.detail, args.iceplant)
    print(event_line(plan))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infscene.quick_plan", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
