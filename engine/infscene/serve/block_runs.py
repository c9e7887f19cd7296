"""One block super-resolved with the library, and read back as a patch of the tile mosaic.

A block is an ordinary `super_resolve` run over the block's extent (`SROptions.bounds`), without a
checkpoint: it plans, reads a margin of context, samples and writes a verified GeoTIFF that appears only
complete, so a server killed mid-block never leaves a half-written block behind. Runs over a map-anchored
extent join their neighbours as well as the engine's runs join (the engine's business, not the server's).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from rasterio.windows import Window, from_bounds

from ..progress import CancelCheck
from ..raster.io import open_raster, reading
from ..run import super_resolve
from .blocks import BlockId
from .render import Patch
from .source import Source


def make_block(source: Source, block: BlockId, output: Path, is_cancelled: CancelCheck) -> None:
    """Super-resolve `block` of `source` into the GeoTIFF `output` (raises Cancelled when `is_cancelled()`)."""
    bounds = source.grid.bounds(source.grid.run_window(block))
    super_resolve(source.path, output, replace(source.options, bounds=bounds), is_cancelled=is_cancelled)


def read_block(source: Source, block: BlockId, path: Path) -> Patch:
    """The block's own part of a block run's output, in display units, with its validity."""
    with open_raster(path) as ds, reading(path):
        exact = from_bounds(*source.grid.bounds(source.grid.window(block)), transform=ds.transform)
        window = Window(round(exact.col_off), round(exact.row_off), round(exact.width), round(exact.height))
        kept = sorted(source.layout.kept)  # the output keeps the bands in the input's order
        bands = [kept.index(b) + 1 for b in source.layout.visible]
        values = ds.read(bands, window=window)
        valid = ds.dataset_mask(window=window) > 0
        transform = ds.window_transform(window)
    return Patch(source.display.apply(values), valid.astype(np.float32), transform)
