"""The raster behind the layer: checked once at start as `infscene sr` checks it, and what its tiles are keyed by.

`open_source` refuses in one line what a run would refuse (a missing, unreadable or rotated file, bands, a
scale or a model the planner rejects) by planning a run over the first block, so the server never starts on
a raster whose every tile would fail. It also fixes everything a tile depends on: the bands shown, the
display stretch (8-bit sources as they are; others stretched from their 2nd to 98th percentile, measured
once on a reduced read), the zoom levels and the cache key (source identity, model weights, options and
engine version: any change gives a new folder in the cache, never a stale tile).

The file may change while it is served (overwritten in place, or another file renamed over it). `FileState`
is what any such change alters; a Source remembers the state its file had when it was opened, and
`LiveSource` opens the file again, under a new cache key, as soon as the state differs. What is made from
the file is kept only when the state is the same after as before (tiles.py), so nothing made while it
changed, possibly from both files, is ever cached or served.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

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

HEAD_BYTES = 64 * 1024  # hashed into the identity: also catches a change on a file system with coarse timestamps
STRETCH_SIDE = 512  # the display stretch is measured on a read of at most this many pixels a side
STRETCH_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class FileState:
    """What any write to a file, or any file renamed over its path, changes: read with one stat.

    The change time (ctime) is set by the system at every write, rename or metadata change and cannot be set
    back, so a file swapped with its size and mtime kept (`touch -r`) still shows; the inode tells a file
    renamed over the path."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


UNREADABLE = FileState(-1, -1, -1, -1, -1)  # no file's: a Source opened while its file was unreadable is stale at once


def file_state(path: Path) -> Optional[FileState]:
    """The file's state now; None when it cannot be read (gone, mid-replacement)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return FileState(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass(frozen=True)
class Source:
    """One raster, its band roles and grid, and the run options every block of it is made with."""

    path: Path  # as given, made absolute: a symbolic link pointed elsewhere is a change of file
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
    state: FileState  # the file's, taken before it was first read
    requested: SROptions  # the options as given, to open the file again when it changes

    def is_current(self) -> bool:
        """Whether the file is still the one this Source was opened on (nothing has written to it or replaced it)."""
        return file_state(self.path) == self.state

    def reopened(self) -> Source:
        """The file as it is now, checked and keyed afresh (raises InfSceneError as at start when it cannot be)."""
        return open_source(self.path, self.requested, self.grid.size)

    def read(self, window: Window, step: int) -> Patch:
        """The source's colour bands and validity in `window`, reduced `step` times (overviews used where present)."""
        height, width = max(1, round(window.height / step)), max(1, round(window.width / step))
        with open_raster(self.path) as ds, reading(self.path):
            values = ds.read(list(self.layout.visible), window=window, out_shape=(3, height, width),
                             resampling=Resampling.average)
            valid = ds.dataset_mask(window=window, out_shape=(height, width), resampling=Resampling.nearest) > 0
            transform = ds.window_transform(window) * Affine.scale(window.width / width, window.height / height)
        return Patch(self.display.apply(values), valid.astype(np.float32), transform)


class LiveSource:
    """The source as its file is now: opened again (so under a new cache key) once the file has changed."""

    def __init__(self, source: Source, log: Callable[[str], None]) -> None:
        self.source = source
        self._log = log
        self._lock = threading.Lock()

    def current(self) -> Source:
        """The Source of the file as it is now; raises InfSceneError when the changed file cannot be opened (the
        next request tries again: it may be half-written)."""
        with self._lock:
            if not self.source.is_current():
                self.source = self.source.reopened()
                zooms = self.source.zooms
                self._log(f"{self.source.path} changed: serving it as it is now (zoom {zooms.min_zoom}-{zooms.max_zoom}, "
                          f"super-resolved above {zooms.native_zoom}), its tiles made afresh")
            return self.source


def open_source(path: Path, options: SROptions, block_size: int) -> Source:
    """Check the raster and the options as a run would, and fix what the layer's tiles depend on."""
    state = file_state(path) or UNREADABLE
    with open_raster(path) as ds:
        if ds.crs is None:
            raise InfSceneError(f"{path} has no CRS: a map layer needs a georeferenced raster (set one with gdal_edit.py -a_srs)")
        grid = BlockGrid(ds.width, ds.height, block_size, ds.transform)
        crs, transform = ds.crs, ds.transform
        bounds = tuple(ds.bounds)
    block_options = replace(options, checkpoint=False, samples=1, resume=False, restart=False)
    plan = plan_run(path, replace(block_options, bounds=grid.bounds(grid.run_window((0, 0)))))
    run_options = replace(block_options, bands=list(plan.layout.visible), precision=plan.precision)
    centre = transform * (grid.width / 2, grid.height / 2)
    pixel = source_pixel_in_mercator(crs, centre, (transform.a, transform.e))
    zooms = zoom_levels(pixel, plan.scale, mercator_side(crs, bounds))  # type: ignore[arg-type]
    with open_raster(path) as ds:
        display = _display(ds, plan.layout, path)
    key = _cache_key(path, state, run_options, plan.family, plan.family_plan.detail, block_size)
    layout = BandLayout(plan.layout.visible, (), plan.layout.alpha)  # what each block run keeps: colour and alpha
    return Source(Path(path).absolute(), crs, grid, layout, run_options, plan.scale, pixel, zooms, display, key,
                  plan.warnings, state, options)


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


def _cache_key(path: Path, state: FileState, options: SROptions, family: str, detail: object, block_size: int) -> str:
    """A digest of everything a tile's pixels depend on (the cache folder of this layer). The file's inode and
    device are left out: they may differ for the same file after a remount (a restart keeps its cache)."""
    with open(path, "rb") as handle:
        head = hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()
    identity = {
        "engine": __version__, "source": str(Path(path).resolve()), "bytes": state.size, "mtime_ns": state.mtime_ns,
        "ctime_ns": state.ctime_ns, "head_sha256": head, "model_sha256": model_checksum(options.model_dir), "family": family,
        "scale": options.scale, "target_res": options.target_res, "bands": list(options.bands or ()),
        "detail": detail, "seed": options.seed, "precision": options.precision, "block": block_size,
        "margin": options.margin,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
