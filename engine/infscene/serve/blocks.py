"""The map-anchored blocks the model runs over.

The source's pixel grid is cut into squares of `size` input pixels counted from the raster's origin, so a
block always covers the same ground whichever tile asked for it first: a block is made once and every tile
that overlaps it reuses it (from memory or the disk cache). Blocks at the right and bottom edges are
clipped to the raster. A run over a very thin edge block would give the model almost no context (and the
planner refuses windows under 2 px), so such a block is run over the last MIN_RUN pixels of the raster and
only its own part of the result is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.windows import Window

DEFAULT_BLOCK = 128  # input pixels a side: measured (bench/serve.py) to fill a view 1.8x faster than 64, its first tile in 1.8 s
MIN_BLOCK = 16
MAX_BLOCK = 1024
MIN_RUN = 16  # input pixels: the narrowest run on either axis (edge blocks reach back into their neighbour)

BlockId = tuple[int, int]  # (block row, block column)


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of `size` x `size` input pixels over a raster of `width` x `height` with geotransform `transform`."""

    width: int
    height: int
    size: int
    transform: Affine

    def blocks_under(self, window: Window) -> list[BlockId]:
        """Every block that shares a pixel with `window` (already clipped to the raster), row by row."""
        row0, col0 = int(window.row_off) // self.size, int(window.col_off) // self.size
        row1 = math.ceil((window.row_off + window.height) / self.size)
        col1 = math.ceil((window.col_off + window.width) / self.size)
        return [(r, c) for r in range(row0, row1) for c in range(col0, col1)]

    def window(self, block: BlockId) -> Window:
        """The block's own pixels, clipped to the raster."""
        row, col = block
        r0, c0 = row * self.size, col * self.size
        return Window(c0, r0, min(self.size, self.width - c0), min(self.size, self.height - r0))

    def run_window(self, block: BlockId) -> Window:
        """The pixels the model runs over for `block`: its own, grown back to MIN_RUN where the raster allows."""
        own = self.window(block)
        width = min(max(int(own.width), MIN_RUN), self.width)
        height = min(max(int(own.height), MIN_RUN), self.height)
        return Window(int(own.col_off + own.width) - width, int(own.row_off + own.height) - height, width, height)

    def bounds(self, window: Window) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of a window in the raster's CRS (north-up or south-up)."""
        left, top = self.transform * (window.col_off, window.row_off)
        right, bottom = self.transform * (window.col_off + window.width, window.row_off + window.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
