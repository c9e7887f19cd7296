"""Map-anchored runs: the window a run samples, snapped to a patch lattice fixed to the raster, with a context margin.

Separate runs of one raster (two extents drawn side by side, the sheets of a batch, the blocks of a live layer) join
without a seam only if each is a piece of the same joint process. So a run does not start its patch grid at its own
corner: patches sit on a lattice counted from the raster's origin (output pixel 0, every `period` = patch - overlap
output pixels), their noise keyed by their lattice index (diffusion/grid.PatchGrid.key_origin), and the run samples
a *context* around its extent, `margin` input pixels wider on every side where the raster has them, its first row and
column on a lattice line. Any two runs then hold the same patches with the same noise over the same pixels, and
differ only through what the dependency cone of the joint process brings in from beyond their context: at a
margin as wide as that cone (docs/method.md, "Runs that join") the extent's output is the larger run's, up to the
float rounding of model calls on tiles of other shapes.

The lattice needs the output pixel to be an exact fraction of the input pixel, so it applies to integer scales; a
run at another scale keeps its own grid and is told so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from rasterio.windows import Window

SCALE_TOLERANCE = 1e-9  # a factor this close to an integer (e.g. 3.0 / 0.6) is that integer


@dataclass(frozen=True)
class Anchor:
    """Where a run samples and what of it is the output."""

    context: Window  # input pixels read and sampled: the extent, its margin, the start on a lattice line
    crop: tuple[int, int]  # (row, col) of the extent's first output pixel in the context's output
    key_origin: tuple[int, int]  # (row, col) lattice index of the context's first patch: its noise key
    margin: int  # input pixels of context asked for on each side (less where the raster ends)
    on_lattice: bool = True  # False: a run at a non-integer scale, on its own grid (and its own window's stretch)


def integer_factor(window_len: int, out_len: int) -> Optional[int]:
    """The axis's scale as an integer (output pixels per input pixel), or None when it is not one."""
    factor = out_len / window_len
    nearest = round(factor)
    return nearest if nearest >= 1 and abs(factor - nearest) <= SCALE_TOLERANCE * factor else None


def _axis(start: int, stop: int, size: int, factor: int, period: int, margin: int) -> tuple[int, int, int, int]:
    """(context start, context stop, crop, lattice index of the context start) along one axis, in input pixels.

    Lattice lines fall every `period` output pixels from the raster's origin, i.e. every `step` input pixels; the
    context starts on the last line at or before start - margin (the raster's first pixel is on line 0).
    """
    step = period // math.gcd(factor, period)
    c0 = max(0, (start - margin) // step * step)
    c1 = min(size, stop + margin)
    return c0, c1, (start - c0) * factor, c0 * factor // period


def anchor_window(raster_size: tuple[int, int], extent: Window, out_size: tuple[int, int], period: int,
                  margin: int) -> Optional[Anchor]:
    """The anchored context of `extent` (input pixels of a raster of `raster_size` rows x cols) whose output is
    `out_size`, for a patch lattice of `period` output pixels; None at a non-integer scale (no lattice to share)."""
    factors = (integer_factor(int(extent.height), out_size[0]), integer_factor(int(extent.width), out_size[1]))
    if factors[0] is None or factors[1] is None:
        return None
    r0, r1, crop_r, key_r = _axis(int(extent.row_off), int(extent.row_off + extent.height), raster_size[0], factors[0],
                                  period, margin)
    c0, c1, crop_c, key_c = _axis(int(extent.col_off), int(extent.col_off + extent.width), raster_size[1], factors[1],
                                  period, margin)
    return Anchor(Window(c0, r0, c1 - c0, r1 - r0), (crop_r, crop_c), (key_r, key_c), margin)


def unanchored(extent: Window) -> Anchor:
    """A run on its own grid: the context is the extent, keys from its corner (a non-integer scale)."""
    return Anchor(extent, (0, 0), (0, 0), 0, on_lattice=False)
