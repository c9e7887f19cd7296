"""Which XYZ zoom levels the live layer serves, and what one EPSG:3857 tile covers.

The zooms follow from the source's pixel size measured in EPSG:3857 units at its centre (a Web Mercator
pixel is smaller on the ground away from the equator, and the comparison must be made in one system):
`native_zoom` is the finest zoom whose pixel is still at least the source's, so it and coarser zooms
show the source itself; `max_zoom` is the first zoom whose pixel reaches the target resolution (the
source's pixel divided by the scale); `min_zoom` is the coarsest zoom where the whole source still spans
a few pixels, below which a tile would show a speck.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import mercantile
from rasterio.crs import CRS
from rasterio.warp import transform, transform_bounds

from ..errors import InfSceneError

WEB_MERCATOR = CRS.from_epsg(3857)
TILE_SIZE = 256
ZOOM0_PIXEL = 2 * math.pi * 6378137.0 / TILE_SIZE  # EPSG:3857 units per pixel at zoom 0 (156543.03)
DEEPEST_ZOOM = 24  # about 1 cm a pixel: deeper than any scale the engine allows reaches
FEW_PIXELS = 16  # min_zoom: the coarsest zoom at which the source's longer side still spans this many pixels
ROUNDING = 1e-9  # zoom arithmetic in log2: a pixel that equals a level's to rounding belongs to that level


def pixel_size(zoom: int) -> float:
    """EPSG:3857 units per tile pixel at `zoom`."""
    return ZOOM0_PIXEL / 2**zoom


@dataclass(frozen=True)
class ZoomLevels:
    min_zoom: int
    native_zoom: int  # this and coarser: the source resampled, no model
    max_zoom: int  # the first zoom at the target resolution: the finest served

    def uses_model(self, zoom: int) -> bool:
        return self.native_zoom < zoom <= self.max_zoom


def zoom_levels(source_pixel: float, scale: float, source_side: float) -> ZoomLevels:
    """The zoom levels of a source whose pixel is `source_pixel` and longer side `source_side` EPSG:3857 units."""
    if not (math.isfinite(source_pixel) and source_pixel > 0 and math.isfinite(source_side) and source_side > 0):
        raise InfSceneError("the source's extent cannot be placed on the Web Mercator map (EPSG:3857): is its CRS right?")
    native = math.floor(math.log2(ZOOM0_PIXEL / source_pixel) + ROUNDING)
    finest = math.ceil(math.log2(ZOOM0_PIXEL * scale / source_pixel) - ROUNDING)
    coarsest = math.ceil(math.log2(ZOOM0_PIXEL * FEW_PIXELS / source_side) - ROUNDING)
    native = min(max(native, 0), DEEPEST_ZOOM - 1)
    finest = min(max(finest, native + 1), DEEPEST_ZOOM)
    return ZoomLevels(min(max(coarsest, 0), native), native, finest)


def source_pixel_in_mercator(crs: CRS, centre: tuple[float, float], step: tuple[float, float]) -> float:
    """The mean side, in EPSG:3857 units, of the source pixel at `centre` whose sides are `step` in the source CRS."""
    (cx, cy), (dx, dy) = centre, step
    xs, ys = transform(crs, WEB_MERCATOR, [cx, cx + dx, cx], [cy, cy, cy + dy])
    along_x = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    along_y = math.hypot(xs[2] - xs[0], ys[2] - ys[0])
    return (along_x + along_y) / 2.0


def mercator_side(crs: CRS, bounds: tuple[float, float, float, float]) -> float:
    """The longer side of `bounds` (source CRS) in EPSG:3857 units."""
    left, bottom, right, top = transform_bounds(crs, WEB_MERCATOR, *bounds, densify_pts=21)
    return max(right - left, top - bottom)


def tile_bounds(zoom: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of tile z/x/y in EPSG:3857."""
    b = mercantile.xy_bounds(x, y, zoom)
    return (b.left, b.bottom, b.right, b.top)


def parse_tile(z: str, x: str, y: str) -> Optional[tuple[int, int, int]]:
    """The tile z/x/y of a request path's parts, or None when they are not one (not plain decimal numbers, a zoom
    beyond DEEPEST_ZOOM, x or y not below 2^z): read as text first, so a huge number is never turned into an int."""
    parts = (z, x, y)
    if not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        return None
    zoom, col, row = (int(p) for p in parts)
    if zoom > DEEPEST_ZOOM or col >= 2**zoom or row >= 2**zoom:
        return None
    return zoom, col, row
