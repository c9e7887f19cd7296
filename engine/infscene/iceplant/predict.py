"""Write the iceplant probability layer of a raster: float32 GeoTIFF on exactly the input's grid.

This is what `infscene iceplant` runs and what the SR pipeline calls on its own output. The
raster is read one row of patches at a time (S rows, full width), every patch is classified on
its own (features.py, model.py) and the patches are blended with the paper's Gaussian window
(blend.py), so memory stays O(S x width) whatever the raster's height. Pixels that are nodata
(or masked, transparent, NaN) in any used band are NaN, the output's nodata value. The file
appears only when complete (atomic.py); a cancelled or failed run leaves nothing behind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..atomic import atomic_output, check_output_path
from ..errors import InfSceneError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker
from ..raster_io import open_raster
from .blend import PatchLayout, RowBlender
from .features import compute_features, feature_matrix
from .model import IceplantModel, load_model
from .source import IceplantBands, check_values, choose_bands, read_bands

PATCH_SIZE = 128  # S in the paper
STRIDE = 64  # up to 4 patches per pixel; the paper's 32 (16 per pixel) costs 4x more for the same model


def patch_layout(src_path: str | Path, patch_size: int = PATCH_SIZE, stride: int = STRIDE) -> PatchLayout:
    """The patches a run on ``src_path`` will classify (its length is the progress total)."""
    if not 0 < stride <= patch_size:
        raise InfSceneError(f"stride must be between 1 and the patch size ({patch_size}), got {stride}")
    with open_raster(src_path) as ds:
        return PatchLayout(ds.height, ds.width, patch_size, stride)


def output_profile(ds: rasterio.DatasetReader) -> dict:
    """Single-band float32 GeoTIFF on the input's grid (CRS, transform, size), NaN nodata, tiled and compressed."""
    return {
        "driver": "GTiff", "dtype": "float32", "count": 1, "height": ds.height, "width": ds.width,
        "crs": ds.crs, "transform": ds.transform, "nodata": float("nan"), "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 3, "BIGTIFF": "IF_SAFER",
    }


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
    """Write P(iceplant) of ``src_path`` to ``dst_path`` and return the output path.

    ``bands``: 1-based R,G,B[,NIR]; by default red/green/blue tags, else 1,2,3, plus a 4th
    non-alpha band as NIR. With NIR the NIR model is used, otherwise the RGB-only one.
    ``model_dir`` holds ``nir``/``rgb`` ``.json`` + ``.safetensors`` (default: the shipped models).
    Progress is counted in patches; ``is_cancelled`` is polled after every patch.
    """
    layout = patch_layout(src_path, patch_size, stride)
    if Path(dst_path).resolve() == Path(src_path).resolve():
        raise InfSceneError(f"output would overwrite the input: {dst_path}")
    with open_raster(src_path) as ds:
        chosen = choose_bands(ds, bands)
        check_values(ds, chosen)
        model = load_model("nir" if chosen.with_nir else "rgb", Path(model_dir) if model_dir is not None else None)
        out = check_output_path(dst_path, needed_bytes=ds.width * ds.height * 4)
        tracker = ProgressTracker(len(layout), progress, is_cancelled)
        tracker.check_cancel()
        with atomic_output(out) as tmp, rasterio.open(tmp, "w", **output_profile(ds)) as dst:
            dst.set_band_description(1, "iceplant probability")
            dst.update_tags(model=f"iceplant-{model.variant}", bands=",".join(map(str, chosen.indexes)),
                            patch_size=layout.size, stride=layout.stride)
            _predict_into(ds, dst, chosen, model, layout, tracker)
    return out
