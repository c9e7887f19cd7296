"""Pixels to a tile: display units, a mosaic of blocks, the warp into EPSG:3857, and the PNG.

Everything is warped with its validity (nodata, alpha and masks of the source; 0 where there is no source):
the colour bands are premultiplied by it and divided again after the warp, so a tile's edge along the
source's edge or a nodata hole is transparent, not darkened; inside the data the result is the plain
bilinear warp, the same as warping the `infscene sr` output directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import array_bounds, from_bounds
from rasterio.warp import reproject

from .zooms import TILE_SIZE, WEB_MERCATOR

TILE_RESAMPLING = Resampling.bilinear  # GDAL widens the kernel when a tile's pixel is larger than the source's


@dataclass(frozen=True)
class Display:
    """Input units to 0-255: identity for 8-bit sources, else a linear stretch per band (gain, offset)."""

    gain: tuple[float, float, float]
    offset: tuple[float, float, float]

    def apply(self, values: np.ndarray) -> np.ndarray:
        """(3, h, w) input units -> float32 display units (not clipped: the warp may still blend them)."""
        out = values.astype(np.float32, copy=False)
        if self.gain == (1.0, 1.0, 1.0) and self.offset == (0.0, 0.0, 0.0):
            return out
        return out * np.float32(self.gain)[:, None, None] + np.float32(self.offset)[:, None, None]


IDENTITY = Display((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def stretch(low: np.ndarray, high: np.ndarray) -> Display:
    """The display that maps `low` to 0 and `high` to 255, per band (a flat band maps to its mid-grey)."""
    span = np.where(high > low, high - low, 1.0)
    gain = 255.0 / span
    return Display(tuple(float(g) for g in gain), tuple(float(-lo * g) for lo, g in zip(low, gain)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Patch:
    """Colour bands in display units on a north-up grid, with their validity (1 valid, 0 none)."""

    rgb: np.ndarray  # (3, h, w) float32
    valid: np.ndarray  # (h, w) float32
    transform: Affine


def mosaic(patches: list[Patch], crs: CRS) -> Patch:
    """The patches (blocks on one grid) side by side on that grid; nearest-neighbour, so aligned pixels are copied."""
    first = patches[0].transform
    west, south, east, north = zip(*(array_bounds(*p.valid.shape, p.transform) for p in patches))
    width = max(1, round((max(east) - min(west)) / abs(first.a)))
    height = max(1, round((max(north) - min(south)) / abs(first.e)))
    origin_x = min(west) if first.a > 0 else max(east)
    origin_y = max(north) if first.e < 0 else min(south)
    transform = Affine(first.a, 0.0, origin_x, 0.0, first.e, origin_y)
    out = np.zeros((4, height, width), np.float32)
    for p in patches:
        reproject(_premultiplied(p), out, src_transform=p.transform, src_crs=crs, dst_transform=transform, dst_crs=crs,
                  resampling=Resampling.nearest, init_dest_nodata=False)
    valid = out[3]
    return Patch(out[:3] / np.maximum(valid, 1e-6), valid, transform)


def _premultiplied(patch: Patch) -> np.ndarray:
    return np.concatenate([patch.rgb * patch.valid, patch.valid[None]]).astype(np.float32)


def warp_to_tile(patch: Patch, crs: CRS, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """The patch warped onto the 256 px EPSG:3857 tile with `bounds`: (256, 256, 4) RGBA uint8."""
    out = np.zeros((4, TILE_SIZE, TILE_SIZE), np.float32)
    reproject(_premultiplied(patch), out, src_transform=patch.transform, src_crs=crs,
              dst_transform=from_bounds(*bounds, TILE_SIZE, TILE_SIZE), dst_crs=WEB_MERCATOR,
              resampling=TILE_RESAMPLING, init_dest_nodata=False)
    alpha = np.clip(out[3], 0.0, 1.0)
    rgb = np.where(alpha > 0, out[:3] / np.maximum(alpha, 1e-6), 0.0)
    rgba = np.concatenate([rgb, alpha[None] * 255.0])
    return np.clip(np.rint(rgba), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def encode_png(rgba: np.ndarray) -> bytes:
    """PNG bytes of an (h, w, 4) RGBA uint8 image."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return data.tobytes()


@lru_cache(maxsize=1)
def transparent_tile() -> bytes:
    """The PNG of a tile with no source under it."""
    return encode_png(np.zeros((TILE_SIZE, TILE_SIZE, 4), np.uint8))
