"""Reading the input window and writing the super-resolved GeoTIFF, with rasterio.

Input: any GDAL raster in any CRS with a north-up (non-rotated) grid, an optional window given
as bounds in the raster's CRS, band selection (R, G, B first, then bands the model was not
trained on, such as NIR), nodata, alpha and per-dataset masks. Output: a tiled, compressed
GeoTIFF on the input's grid with the pixel size divided by the scale, same CRS, dtype, band
order, colour interpretation, descriptions and nodata.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError, WindowError
from rasterio.windows import Window, from_bounds

from .errors import InfSceneError

VISIBLE = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
VISIBLE_NAMES = ("red", "green", "blue")
SOURCE_BAND_TAG = "SOURCE_BAND"  # per output band: the 1-based input band it was made from


def open_raster(path: str | Path) -> rasterio.DatasetReader:
    """Open a raster for reading, refusing what the engine cannot handle with a one-line message."""
    if not Path(path).exists():
        raise InfSceneError(f"input file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise InfSceneError(f"not a readable raster: {path} ({str(exc).splitlines()[0]})") from exc
    if not ds.transform.is_rectilinear:
        ds.close()
        raise InfSceneError(
            f"rotated or sheared geotransform is not supported: {path}; warp it to a north-up grid first (gdalwarp)"
        )
    return ds


@dataclass(frozen=True)
class BandLayout:
    """Which input bands (1-based) play which role."""

    visible: tuple[int, int, int]  # red, green, blue: what the model super-resolves
    extra: tuple[int, ...]  # other kept bands (e.g. NIR), super-resolved by guidance
    alpha: Optional[int]

    @property
    def kept(self) -> list[int]:
        """Bands written to the output, in the input's own order."""
        return sorted([*self.visible, *self.extra, *([self.alpha] if self.alpha else [])])


def resolve_bands(ds: rasterio.DatasetReader, bands: Optional[Sequence[int]] = None) -> BandLayout:
    """Band roles from the user's list (R,G,B[,extra...]) or from colour interpretation.

    Without a list: bands tagged red/green/blue (colour interpretation or description) are the
    visible ones; otherwise bands 1, 2, 3 are taken as R, G, B (NAIP order). Every other
    non-alpha band is kept as an extra band. Planet analytic (B, G, R, NIR) without tags needs
    `bands=[3, 2, 1, 4]`.
    """
    interp = list(ds.colorinterp)
    alpha = next((i + 1 for i, c in enumerate(interp) if c == ColorInterp.alpha), None)
    if bands is not None:
        bands = [int(b) for b in bands]
        bad = [b for b in bands if not 1 <= b <= ds.count]
        if bad:
            raise InfSceneError(f"band {bad[0]} does not exist: the raster has {ds.count} band(s)")
        if len(bands) < 3 or len(set(bands)) != len(bands):
            raise InfSceneError("--bands needs at least 3 distinct band numbers: red, green, blue[, extra bands]")
        if alpha in bands:
            raise InfSceneError(f"band {alpha} is the alpha band; it cannot be a colour band")
        return BandLayout((bands[0], bands[1], bands[2]), tuple(bands[3:]), alpha)

    data_bands = [i + 1 for i in range(ds.count) if i + 1 != alpha]
    if len(data_bands) < 3:
        raise InfSceneError(
            f"the raster has {len(data_bands)} data band(s); super-resolution needs red, green and blue bands"
        )
    descriptions = [(d or "").strip().lower() for d in ds.descriptions]
    tagged = []
    for role, name in zip(VISIBLE, VISIBLE_NAMES):
        found = [i + 1 for i in range(ds.count) if interp[i] == role or descriptions[i] == name]
        tagged.append(found[0] if found else None)
    visible = tuple(tagged) if None not in tagged and len(set(tagged)) == 3 else tuple(data_bands[:3])
    extra = tuple(b for b in data_bands if b not in visible)
    return BandLayout(visible, extra, alpha)  # type: ignore[arg-type]


def resolve_window(ds: rasterio.DatasetReader, bounds: Optional[Sequence[float]] = None) -> Window:
    """The pixel-aligned window for `bounds` (minx, miny, maxx, maxy in the raster's CRS), clipped to the raster."""
    full = Window(0, 0, ds.width, ds.height)
    if bounds is None:
        return full
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    if not (minx < maxx and miny < maxy):
        raise InfSceneError(f"empty extent: ({minx}, {miny}, {maxx}, {maxy}) has no area")
    b = ds.bounds
    if maxx <= b.left or minx >= b.right or maxy <= b.bottom or miny >= b.top:
        raise InfSceneError(
            f"extent ({minx}, {miny}, {maxx}, {maxy}) lies outside the raster "
            f"({b.left}, {b.bottom}, {b.right}, {b.top}) in its CRS"
        )
    win = from_bounds(minx, miny, maxx, maxy, ds.transform)
    col0, row0 = math.floor(win.col_off + 1e-6), math.floor(win.row_off + 1e-6)
    col1, row1 = math.ceil(win.col_off + win.width - 1e-6), math.ceil(win.row_off + win.height - 1e-6)
    try:
        win = Window(col0, row0, col1 - col0, row1 - row0).intersection(full)
    except WindowError as exc:
        raise InfSceneError("extent does not overlap the raster") from exc
    if win.width < 2 or win.height < 2:
        raise InfSceneError(f"extent covers only {win.width}x{win.height} input pixels; at least 2x2 are needed")
    return win


@dataclass
class WindowData:
    """Bands read from the input window as float32, with the pixels that are valid in all of them."""

    values: np.ndarray  # (bands, h, w) float32, in input units
    valid: np.ndarray  # (h, w) bool
    alpha: Optional[np.ndarray]  # (h, w) input alpha, if the raster has one


def read_window(ds: rasterio.DatasetReader, window: Window, bands: Sequence[int], alpha: Optional[int]) -> WindowData:
    """Read `bands` in `window`; nodata, alpha, NaN and GDAL masks all mark pixels invalid."""
    values = ds.read(list(bands), window=window).astype(np.float32)
    valid = np.all(ds.read_masks(list(bands), window=window) > 0, axis=0) & np.all(np.isfinite(values), axis=0)
    alpha_values = ds.read(alpha, window=window) if alpha else None
    if not valid.any():
        raise InfSceneError("the extent has no valid pixels (all nodata or transparent)")
    return WindowData(values, valid, alpha_values)


def output_grid(ds: rasterio.DatasetReader, window: Window, scale: Optional[float], target_res: Optional[float]) -> tuple[int, int, Affine]:
    """Output (height, width, transform): the window's bounds, with pixels `scale` times smaller."""
    if (scale is None) == (target_res is None):
        raise InfSceneError("give exactly one of scale or target resolution")
    res_x, res_y = abs(ds.transform.a), abs(ds.transform.e)
    if target_res is not None:
        if target_res <= 0:
            raise InfSceneError(f"target resolution must be positive, got {target_res}")
        sx, sy = res_x / target_res, res_y / target_res
    else:
        sx = sy = float(scale)  # type: ignore[arg-type]
    if not (1.0 < sx <= 16.0 and 1.0 < sy <= 16.0):
        raise InfSceneError(f"scale factor must be in (1, 16], got {sx:.3g} (pixel size {res_x:.4g} -> target)")
    out_w, out_h = max(1, round(window.width * sx)), max(1, round(window.height * sy))
    transform = ds.window_transform(window) @ Affine.scale(window.width / out_w, window.height / out_h)
    return out_h, out_w, transform


def output_profile(ds: rasterio.DatasetReader, layout: BandLayout, height: int, width: int, transform: Affine) -> dict:
    """GeoTIFF profile of the output: the input's dtype, CRS and nodata; tiled and compressed."""
    dtype = ds.dtypes[layout.visible[0] - 1]
    return {
        "driver": "GTiff",
        "dtype": dtype,
        "count": len(layout.kept),
        "height": height,
        "width": width,
        "crs": ds.crs,
        "transform": transform,
        "nodata": ds.nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3 if np.dtype(dtype).kind == "f" else 2,
        "BIGTIFF": "IF_SAFER",
        "interleave": "pixel" if len(layout.kept) <= 4 else "band",
    }


def copy_band_metadata(src: rasterio.DatasetReader, dst: rasterio.io.DatasetWriter, layout: BandLayout) -> None:
    """Keep each band's description and colour interpretation, tagging the model's bands red, green, blue.

    The tags let GIS renderers (and the QGIS plugin) show the result in true colour whatever the
    input's band order (Planet analytic B,G,R,NIR) or its lack of tags (NAIP). Each band also
    records the input band it came from (SOURCE_BAND), so a viewer can draw it with that band's
    stretch even when --bands dropped some.
    """
    roles = dict(zip(layout.visible, VISIBLE))
    dst.colorinterp = [roles.get(b, src.colorinterp[b - 1]) for b in layout.kept]
    for out_index, band in enumerate(layout.kept, start=1):
        dst.update_tags(out_index, **{SOURCE_BAND_TAG: str(band)})
        if src.descriptions[band - 1]:
            dst.set_band_description(out_index, src.descriptions[band - 1])
