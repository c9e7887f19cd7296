"""Walking an array, a window or a file in blocks: the one walk every bounded-memory pass of the engine uses.

A scene is never held whole, so everything that touches all of it (window statistics, the low-resolution
canvas, the output and spread writes, the Welford passes of --samples, checkpoint copies, the Dask fusing
regions, the input hash, the read-back of a written file, the iceplant value scan) goes block by block,
row-major. They differ only in the block's shape: rows of about so many pixels, or whole chunks of a
chunked array, or so many chunks a side; `tiles` is the walk and the rest say what block to walk with.
"""
from __future__ import annotations

from typing import Iterator, Optional

from rasterio.windows import Window

BLOCK_PIXELS = 2_000_000


def tiles(height: int, width: int, block: tuple[int, int]) -> Iterator[tuple[slice, slice]]:
    """(rows, cols) of an array cut into blocks of `block` (rows, cols), row-major; the last row and column short."""
    rows, cols = max(1, block[0]), max(1, block[1])
    for r0 in range(0, height, rows):
        for c0 in range(0, width, cols):
            yield slice(r0, min(height, r0 + rows)), slice(c0, min(width, c0 + cols))


def blocks(height: int, width: int, pixels: int = BLOCK_PIXELS,
           chunk: Optional[tuple[int, int]] = None) -> Iterator[tuple[slice, slice]]:
    """(rows, cols) blocks of at most about `pixels` pixels, row-major.

    Without `chunk` (an array in memory, a file read by rows) they are full-width row blocks. With the
    (rows, cols) `chunk` of a chunked array they cover whole chunks, so each stored chunk is read once however
    wide the array: row blocks of the whole width would read every chunk of a band once per block, 16 times
    over for a 1-gigapixel output in 512-px chunks. A chunk larger than `pixels` is cut into full-width row blocks.
    """
    chunk_rows, chunk_cols = (height, width) if chunk is None else (min(chunk[0], height), min(chunk[1], width))
    chunk_cols = max(1, chunk_cols)
    rows = min(chunk_rows, max(1, pixels // chunk_cols))
    return tiles(height, width, (rows, max(chunk_cols, pixels // max(1, rows) // chunk_cols * chunk_cols)))


def pixels_in(budget_bytes: int, pixel_bytes: int) -> int:
    """How many pixels of `pixel_bytes` each (all bands of one pixel) fit in `budget_bytes`."""
    return budget_bytes // max(1, pixel_bytes)


def window_of(window: Window, rows: slice, cols: slice) -> Window:
    """A block (rows, cols) of `window`, as a window of the raster."""
    return Window(window.col_off + cols.start, window.row_off + rows.start, cols.stop - cols.start, rows.stop - rows.start)
