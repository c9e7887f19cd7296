"""Write the iceplant probability layer of a raster: float32 GeoTIFF on exactly the input's grid.

This is what `infscene iceplant` runs and what the SR pipeline calls on its own output. The
raster is read one row of patches at a time (S rows, full width), every patch is classified on
its own (features.py, model.py) and the patches are blended with the paper's Gaussian window
(blend.py), so memory stays O(S x width) whatever the raster's height. Pixels that are nodata
(or masked, transparent, NaN) in any used band are NaN, the output's nodata value. As for
super-resolution, a run is planned once (`plan_iceplant`: input, bands, values, model, output
path and disk) and the plan carried out (`run_iceplant`); the file appears only when complete
and verified (atomic.py, raster_io.verified_geotiff); a cancelled or failed run leaves nothing behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..raster.atomic import atomic_output, check_free_space, check_output_path, refuse_overwriting_input
from ..errors import InfSceneError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker
from ..protocol import PROTOCOL_VERSION, Plan
from ..raster.io import geotiff_profile, open_raster, reading, verified_geotiff
from ..raster.workspace import Workspace
from .blend import PATCH_SIZE, STRIDE, PatchLayout, RowBlender
from .features import compute_features, feature_matrix
from .model import IceplantModel, load_model
from .source import IceplantBands, check_values, choose_bands, read_bands


def patch_layout(src_path: str | Path, patch_size: int = PATCH_SIZE, stride: int = STRIDE) -> PatchLayout:
    """The patches a run on ``src_path`` will classify (its length is the progress total)."""
    with open_raster(src_path) as ds:
        return _layout(ds, patch_size, stride)


def _layout(ds: rasterio.DatasetReader, patch_size: int, stride: int) -> PatchLayout:
    if patch_size < 1:
        raise InfSceneError(f"patch size must be at least 1, got {patch_size}")
    if not 0 < stride <= patch_size:
        raise InfSceneError(f"stride must be between 1 and the patch size ({patch_size}), got {stride}")
    return PatchLayout(ds.height, ds.width, patch_size, stride)


def output_profile(ds: rasterio.DatasetReader) -> dict:
    """Single-band float32 GeoTIFF on the input's grid (CRS, transform, size), NaN nodata, tiled and compressed."""
    return geotiff_profile("float32", 1, ds.height, ds.width, ds.crs, ds.transform, float("nan"))


def check_iceplant_input(src_path: str | Path, bands: Optional[Sequence[int]] = None) -> IceplantBands:
    """The bands the iceplant model will read, refusing a raster it cannot use (one line, one pass)."""
    with open_raster(src_path) as ds, reading(src_path):
        chosen = choose_bands(ds, bands)
        check_values(ds, chosen)
    return chosen


@dataclass(frozen=True)
class IceplantPlan:
    """An iceplant run, decided before any work: what `run_iceplant` carries out and the `plan` event reports."""

    input_path: Path
    output_path: Path
    bands: IceplantBands
    model: IceplantModel
    layout: PatchLayout

    def event(self) -> Plan:
        """The protocol's `plan` event: one step per patch."""
        return Plan(output_width=self.layout.width, output_height=self.layout.height, patches=len(self.layout),
                    steps=1, total=len(self.layout), output_bytes=self.layout.width * self.layout.height * 4,
                    canvas_bytes=0, estimated_s=None, protocol=PROTOCOL_VERSION)


def plan_iceplant(
    src_path: str | Path, dst_path: str | Path, model_dir: Optional[str | Path] = None,
    bands: Optional[Sequence[int]] = None, patch_size: int = PATCH_SIZE, stride: int = STRIDE,
) -> IceplantPlan:
    """Check the input, its bands and values, the model, the output path and the disk; writes nothing."""
    refuse_overwriting_input(src_path, {"output": dst_path})
    out = check_output_path(dst_path)
    chosen = check_iceplant_input(src_path, bands)
    with open_raster(src_path) as ds:
        layout = _layout(ds, patch_size, stride)
    model = load_model("nir" if chosen.with_nir else "rgb", Path(model_dir) if model_dir is not None else None)
    check_free_space([(out.parent, layout.width * layout.height * 4)])
    return IceplantPlan(Path(src_path), out, chosen, model, layout)


def _classify_patch(model: IceplantModel, bands: dict[str, np.ndarray], valid: np.ndarray, with_nir: bool) -> np.ndarray:
    """P(iceplant) of one patch from its own pixels only; an all-nodata patch is not classified."""
    if not valid.any():
        return np.zeros(valid.shape)
    features = compute_features(bands, valid, with_nir)
    return model.predict_proba(feature_matrix(features, model.features)).reshape(valid.shape)


def _predict_into(
    ds: rasterio.DatasetReader, dst: rasterio.io.DatasetWriter, bands: IceplantBands, model: IceplantModel,
    layout: PatchLayout, tracker: ProgressTracker,
) -> None:
    """Classify every patch and write the blended probability, one strip of patch rows at a time.

    Not raster.blocks' walk: patches overlap (stride < patch), and a strip's rows are written only once the
    next strip's patches have been blended into them (RowBlender), so the walk follows the patch layout.
    """
    blender = RowBlender(layout)
    rows, cols = layout.rows, layout.cols
    for k, y0 in enumerate(rows):
        strip, valid = read_bands(ds, bands, Window(0, y0, layout.width, layout.patch_height))
        for x0 in cols:
            part = slice(x0, x0 + layout.patch_width)
            patch = {name: values[:, part] for name, values in strip.items()}
            blender.add(y0, x0, _classify_patch(model, patch, valid[:, part], bands.with_nir))
            tracker.advance()
        first, done = blender.finish_row(rows[k + 1] if k + 1 < len(rows) else None)
        done[~valid[: done.shape[0]]] = np.nan
        dst.write(done, 1, window=Window(0, first, layout.width, done.shape[0]))


def run_iceplant(plan: IceplantPlan, progress: Optional[ProgressCallback] = None,
                 is_cancelled: Optional[CancelCheck] = None) -> Path:
    """Carry out an iceplant plan; returns the output path. Progress is counted in patches;
    ``is_cancelled`` is polled after every patch."""
    tracker = ProgressTracker(len(plan.layout), progress, is_cancelled)
    tracker.check_cancel()
    with open_raster(plan.input_path) as ds, Workspace() as workspace, \
            atomic_output(plan.output_path, workspace) as tmp, \
            verified_geotiff(tmp, output_profile(ds), plan.output_path) as dst, reading(plan.input_path):
        dst.set_band_description(1, "iceplant probability")
        dst.update_tags(model=f"iceplant-{plan.model.variant}", bands=",".join(map(str, plan.bands.indexes)),
                        patch_size=plan.layout.size, stride=plan.layout.stride)
        _predict_into(ds, dst, plan.bands, plan.model, plan.layout, tracker)
    return plan.output_path


def write_iceplant_probability(
    src_path: str | Path,
    dst_path: str | Path,
    model_dir: Optional[str | Path] = None,
    bands: Optional[Sequence[int]] = None,
    progress: Optional[ProgressCallback] = None,
    is_cancelled: Optional[CancelCheck] = None,
    patch_size: int = PATCH_SIZE,
    stride: int = STRIDE,
) -> Path:
    """Write P(iceplant) of ``src_path`` to ``dst_path`` and return the output path (plan, then run).

    ``bands``: 1-based R,G,B[,NIR]; by default red/green/blue tags, else 1,2,3, plus a 4th
    non-alpha band as NIR. With NIR the NIR model is used, otherwise the RGB-only one.
    ``model_dir`` holds ``nir``/``rgb`` ``.json`` + ``.safetensors`` (default: the shipped models).
    """
    plan = plan_iceplant(src_path, dst_path, model_dir, bands, patch_size, stride)
    return run_iceplant(plan, progress, is_cancelled)
