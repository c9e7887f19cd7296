"""The raster behind the layer: checked once at start as `infscene sr` checks it, and what its tiles are keyed by.

`open_source` refuses in one line what a run would refuse (a missing, unreadable or rotated file, bands, a
scale or a model the planner rejects) by planning a run over the first block, so the server never starts on
a raster whose every tile would fail. It also fixes everything a tile depends on: the bands shown, the
display stretch (8-bit sources as they are; others stretched from their 2nd to 98th percentile, measured
once on a reduced read), the zoom levels and the cache key (source identity, model weights, options and
engine version: any change gives a new folder in the cache, never a stale tile).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from .. import __version__
from ..errors import InfSceneError
from ..plan import SROptions, model_checksum, plan_run
from ..raster.io import BandLayout, open_raster, reading
from .blocks import BlockGrid
from .render import IDENTITY, Display, Patch, stretch
from .zooms import ZoomLevels, mercator_side, source_pixel_in_mercator, zoom_levels

HEAD_BYTES = 64 * 1024  # hashed into the identity: catches a file replaced with the same size and mtime
STRETCH_SIDE = 512  # the display stretch is measured on a read of at most this many pixels a side
STRETCH_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class Source:
    """One raster, its band roles and grid, and the run options every block of it is made with."""

    path: Path
    crs: rasterio.crs.CRS
    grid: BlockGrid
    layout: BandLayout
    options: SROptions  # the template of each block's run (bounds filled per block)
    scale: float
    pixel_3857: float  # the source pixel's side in EPSG:3857 units at its centre
    zooms: ZoomLevels
    display: Display
    cache_key: str
    warnings: tuple[str, ...]

    def read(self, window: Window, step: int) -> Patch:
        """The source's colour bands and validity in `window`, reduced `step` times (overviews used where present)."""
        height, width = max(1, round(window.height / step)), max(1, round(window.width / step))
        with open_raster(self.path) as ds, reading(self.path):
            values = ds.read(list(self.layout.visible), window=window, out_shape=(3, height, width),
                             resampling=Resampling.average)
            valid = ds.dataset_mask(window=window, out_shape=(height, width), resampling=Resampling.nearest) > 0
            transform = ds.window_transform(window) * Affine.scale(window.width / width, window.height / height)
        return Patch(self.display.apply(values), valid.astype(np.float32), transform)


def open_source(path: Path, options: SROptions, block_size: int) -> Source:
    """Check the raster and the options as a run would, and fix what the layer's tiles depend on."""
    with open_raster(path) as ds:
        if ds.crs is None:
            raise InfSceneError(f"{path} has no CRS: a map layer needs a georeferenced raster (set one with gdal_edit.py -a_srs)")
        grid = BlockGrid(ds.width, ds.height, block_size, ds.transform)
        crs, transform = ds.crs, ds.transform
        bounds = tuple(ds.bounds)
    block_options = replace(options, checkpoint=False, samples=1, resume=False, restart=False)
    plan = plan_run(path, replace(block_options, bounds=grid.bounds(grid.run_window((0, 0)))))
    options = replace(block_options, bands=list(plan.layout.visible), precision=plan.precision)
    centre = transform * (grid.width / 2, grid.height / 2)
    pixel = source_pixel_in_mercator(crs, centre, (transform.a, transform.e))
    zooms = zoom_levels(pixel, plan.scale, mercator_side(crs, bounds))  # type: ignore[arg-type]
    with open_raster(path) as ds:
        display = _display(ds, plan.layout, path)
    key = _cache_key(path, options, plan.family, plan.family_plan.detail, block_size)
    layout = BandLayout(plan.layout.visible, (), plan.layout.alpha)  # what each block run keeps: colour and alpha
    return Source(Path(path).resolve(), crs, grid, layout, options, plan.scale, pixel, zooms, display, key,
                  plan.warnings)


def _display(ds: rasterio.DatasetReader, layout: BandLayout, path: Path) -> Display:
    """8-bit colour as it is; other types stretched from a reduced read of the valid pixels."""
    if all(ds.dtypes[b - 1] == "uint8" for b in layout.visible):
        return IDENTITY
    step = max(1, -(-max(ds.width, ds.height) // STRETCH_SIDE))
    shape = (max(1, ds.height // step), max(1, ds.width // step))
    with reading(path):
        values = ds.read(list(layout.visible), out_shape=(3, *shape), resampling=Resampling.average).astype(np.float64)
        valid = ds.dataset_mask(out_shape=shape) > 0
    if not valid.any():
        raise InfSceneError(f"{path} has no valid pixels (all nodata or transparent): there is nothing to show")
    low, high = (np.percentile(values[:, valid], q, axis=1) for q in STRETCH_PERCENTILES)
    return stretch(low, high)


def _cache_key(path: Path, options: SROptions, family: str, detail: object, block_size: int) -> str:
    """A digest of everything a tile's pixels depend on (the cache folder of this layer)."""
    stat = Path(path).stat()
    with open(path, "rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()
    identity = {
        "engine": __version__, "source": str(Path(path).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "head_sha256": head, "model_sha256": model_checksum(options.model_dir), "family": family,
        "scale": options.scale, "target_res": options.target_res, "bands": list(options.bands or ()),
        "detail": detail, "seed": options.seed, "precision": options.precision, "block": block_size,
        "margin": options.margin,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
