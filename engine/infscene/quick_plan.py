"""The fast planning call: every check that needs neither torch nor the model's weights, in well under a second.

`python -m infscene.quick_plan INPUT [OUTPUT] --scale 4 --bounds ... [--iceplant] --json` prints one JSON object:
the input window and the output grid exactly as `infscene sr` will make them (raster.io's own functions), the
output's size on disk, the free disk space, the model's family and what it accepts (config.json read as JSON, no
network built), what stops the run (`problems`), what the user should know (`warnings`) and why an option cannot
apply (`unavailable`: option -> reason). The QGIS panel calls it whenever the layer, the extent or an option
changes, so the size it shows is the engine's and the checks come before Run; `infscene sr --dry-run` remains the
full check (model load and timing). Importing this module imports rasterio and numpy, never torch.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .errors import InfSceneError
from .modelformat.contract import ModelContract
from .modelformat.files import DEFAULT_MODEL_DIR, WEIGHTS_FILE, read_raw_config
from .protocol import MAX_SAMPLES, SCALE_MAX, SCALE_MIN_EXCLUSIVE
from .raster.atomic import check_output_path, refuse_overwriting_input
from .raster.io import open_raster, output_grid, resolve_bands, resolve_window

from .iceplant.model import DEFAULT_MODEL_DIR as ICEPLANT_MODEL_DIR



def model_summary(folder: Path) -> dict[str, Any]:
    """What the panel needs to know of a model folder, from its config.json alone (no weights read): its family and
    the fields that say what it accepts, a field the config leaves out being the contract's default. Which family
    takes which option is the caller's knowledge (this module is generic: the registry, which knows, imports torch)."""
    raw, _ = read_raw_config(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise InfSceneError(f"the model folder has no {WEIGHTS_FILE}: {folder}")
    default = ModelContract()
    return {
        "path": str(folder), "name": str(raw.get("name") or folder.name),
        "family": str(raw.get("family") or ""),  # absent: the first family (the registry's default)
        "trained": bool(raw.get("trained", default.trained)), "patch_size": int(raw.get("patch_size", default.patch_size)),
        "scale_min": float(raw.get("scale_min", default.scale_min)), "scale_max": float(raw.get("scale_max", default.scale_max)),
        "texture_head": bool(raw.get("texture_channels")), "default_detail": float(raw.get("default_detail", 1.0)),
        "diffusion_steps": raw.get("diffusion_steps"),
        "train_pixel_size_m": raw.get("train_pixel_size_m", default.train_pixel_size_m),
    }


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
               detail: Optional[float] = None, iceplant: bool = False) -> dict[str, Any]:
    """The plan's checks and sizes as plain data; never raises for bad input (it is reported in `problems`)."""
    started = time.perf_counter()
    result: dict[str, Any] = {"event": "quick_plan", "problems": [], "warnings": [], "unavailable": {}}
    problems, warnings, unavailable = result["problems"], result["warnings"], result["unavailable"]
    model = None
    try:
        model = model_summary(Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR)  # as `infscene sr` does
        result["model"] = model
        if not model["trained"]:
            warnings.append(f"the model '{model['name']}' is not trained: the result will be noise")
    except InfSceneError as exc:
        problems.append(str(exc))
    if not 1 <= samples <= MAX_SAMPLES:
        problems.append(f"samples must be between 1 and {MAX_SAMPLES}, got {samples}")
    elif samples > 1 and detail == 0.0:
        warnings.append("at detail 0 every sample is the same: the spread is 0 everywhere")
    try:
        with open_raster(input_path) as ds:
            georeferenced = not (ds.crs is None and ds.transform.is_identity)
            result["georeferenced"] = georeferenced
            result["input_size"] = [ds.width, ds.height]
            result["dtype"] = str(ds.dtypes[0])
            if not georeferenced:
                warnings.append(f"{Path(input_path).name} has no georeference (no CRS, no geotransform): the extent is "
                                "in pixels and the output has no georeference either")
            if iceplant:
                reason = iceplant_problem(ds, bands)
                if reason is not None:
                    unavailable["iceplant"] = reason
                    problems.append(reason)
            elif ds.count >= 3:
                reason = iceplant_problem(ds, bands)
                if reason is not None:
                    unavailable["iceplant"] = reason
            layout = resolve_bands(ds, bands)
            notes: list[str] = []
            window = resolve_window(ds, bounds, notes)
            warnings.extend(notes)
            result["window"] = [int(window.col_off), int(window.row_off), int(window.width), int(window.height)]
            height, width, _ = output_grid(ds, window, None if target_res else scale, target_res or None)
            result["output_size"] = [width, height]
            real_scale = (width / window.width + height / window.height) / 2.0
            result["scale"] = real_scale
            result["output_pixel_size"] = abs(ds.transform.a) * window.width / width
            itemsize = np.dtype(ds.dtypes[layout.visible[0] - 1]).itemsize
            result["output_bytes"] = width * height * len(layout.kept) * itemsize
            result["spread_bytes"] = width * height * 4 if samples > 1 else 0
            if model is not None and not model["scale_min"] <= real_scale <= model["scale_max"]:
                warnings.append(f"scale {real_scale:.3g} is outside the range the model was trained on "
                                f"({model['scale_min']:g}-{model['scale_max']:g}): expect weaker detail")
    except InfSceneError as exc:
        problems.append(str(exc))
    if output_path:
        try:
            refuse_overwriting_input(input_path, {"output": output_path})
            out = check_output_path(output_path) if Path(output_path).parent.is_dir() else None
            folder = out.parent if out is not None else _existing_parent(Path(output_path))
            free = shutil.disk_usage(folder).free
            result["disk_free"] = free
            need = result.get("output_bytes", 0) + result.get("spread_bytes", 0)
            if need and free < need * 1.1:
                problems.append(f"not enough disk space in {folder}: the run writes about {_mb(need)}, {_mb(free)} free")
        except (InfSceneError, OSError) as exc:
            problems.append(str(exc))
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _existing_parent(path: Path) -> Path:
    """The nearest folder that exists above `path` (the panel creates the output folder when it runs)."""
    for parent in path.parents:
        if parent.is_dir():
            return parent
    return Path(".")


def _mb(count: float) -> str:
    return f"{count / 1024**2:.1f} MB" if count < 1024**3 else f"{count / 1024**3:.2f} GB"


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input")
    parser.add_argument("output", nargs="?")
    parser.add_argument("--scale", type=_finite, default=4.0)
    parser.add_argument("--target-res", type=_finite)
    parser.add_argument("--bounds", type=_finite, nargs=4, metavar=("MINX", "MINY", "MAXX", "MAXY"))
    parser.add_argument("--bands", type=lambda s: [int(b) for b in s.split(",") if b.strip()])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--detail", type=_finite)
    parser.add_argument("--iceplant", action="store_true", help="the run also writes the iceplant probability")


def run(args: argparse.Namespace) -> int:
    plan = quick_plan(args.input, args.output, args.scale, args.target_res, args.bounds, args.bands, args.model,
                      args.samples, args.detail, args.iceplant)
    print(json.dumps(plan))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """`infscene plan`: the same call through the main command (which imports torch; the plugin calls this module)."""
    parser = subparsers.add_parser("plan", help="fast checks and output size of an sr run, as one JSON line")
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infscene.quick_plan", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
