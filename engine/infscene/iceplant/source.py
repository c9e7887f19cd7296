"""The input raster as the iceplant model needs it: R, G, B[, NIR] as 8-bit values plus a validity mask.

The model learnt from 8-bit NAIP, so other data types are accepted only when their valid values
already lie in 0..255 (e.g. a float32 or uint16 copy of 8-bit imagery; floats are rounded to the
nearest integer). Anything else (12-bit or 16-bit counts, 0-1 reflectance, negative values) is
refused with a message saying how to convert it, rather than turned into meaningless features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import InfSceneError
from ..raster.blocks import tiles
from ..raster.io import resolve_bands, valid_pixels

SCAN_ROWS = 512


@dataclass(frozen=True)
class IceplantBands:
    """1-based input bands playing red, green, blue and (optionally) NIR."""

    red: int
    green: int
    blue: int
    nir: Optional[int]

    @property
    def with_nir(self) -> bool:
        return self.nir is not None

    @property
    def indexes(self) -> list[int]:
        return [self.red, self.green, self.blue, *([self.nir] if self.nir is not None else [])]

    @property
    def names(self) -> tuple[str, ...]:
        return ("r", "g", "b", "nir")[: len(self.indexes)]


def choose_bands(ds: rasterio.DatasetReader, bands: Optional[Sequence[int]] = None) -> IceplantBands:
    """R, G, B[, NIR] from ``bands`` (1-based) or from the raster: red/green/blue tags, else 1, 2, 3, and
    the one remaining non-alpha band as NIR. The NIR model is used exactly when a NIR band is chosen."""
    if ds.count < 3:
        raise InfSceneError(
            f"the raster has {ds.count} band(s); the iceplant model needs red, green and blue (and optionally NIR) bands"
        )
    if bands is not None and len(bands) not in (3, 4):
        raise InfSceneError(f"iceplant --bands takes 3 or 4 band numbers (R,G,B[,NIR]), got {len(bands)}")
    layout = resolve_bands(ds, bands)
    if len(layout.extra) > 1:
        raise InfSceneError(
            f"the raster has {len(layout.extra)} bands besides red, green and blue; "
            "say which one is NIR with --bands R,G,B,NIR (or --bands R,G,B for the RGB-only model)"
        )
    return IceplantBands(*layout.visible, nir=layout.extra[0] if layout.extra else None)


def _read_raw(ds: rasterio.DatasetReader, indexes: list[int], window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Band values in their own dtype and the pixels valid in all of them (nodata, alpha, masks, NaN)."""
    values = ds.read(indexes, window=window)
    valid = valid_pixels(ds, indexes, None, window=window)
    if values.dtype.kind == "f":
        valid &= np.all(np.isfinite(values), axis=0)
    return values, valid


def _scan(ds: rasterio.DatasetReader, bands: IceplantBands, whole: bool) -> tuple[float, float, bool]:
    """(lowest, highest) valid value and whether any pixel is valid, in row blocks; without `whole`, only until the first
    valid pixel (all that 8-bit data needs: a pass over a valid raster stops in its first block)."""
    low, high, seen = np.inf, -np.inf, False
    for rows, cols in tiles(ds.height, ds.width, (SCAN_ROWS, ds.width)):
        values, valid = _read_raw(ds, bands.indexes, Window.from_slices(rows, cols))
        if valid.any():
            low, high, seen = min(low, float(values[:, valid].min())), max(high, float(values[:, valid].max())), True
            if not whole:
                break
    return low, high, seen


def check_values(ds: rasterio.DatasetReader, bands: IceplantBands) -> None:
    """Refuse a raster with no valid pixel (as `sr` does), and non-8-bit data whose valid values leave 0..255 or look
    like 0-1 reflectance (one pass over the raster)."""
    dtypes = {np.dtype(ds.dtypes[b - 1]) for b in bands.indexes}
    if any(dt.kind == "c" for dt in dtypes):
        raise InfSceneError("complex-valued bands are not supported by the iceplant model; it needs 8-bit R,G,B[,NIR]")
    eight_bit = dtypes == {np.dtype(np.uint8)}
    low, high, seen = _scan(ds, bands, whole=not eight_bit)
    if not seen:
        raise InfSceneError("the raster has no valid pixels (all nodata or transparent): there is nothing to classify")
    if eight_bit:
        return
    kind = ", ".join(sorted(str(dt) for dt in dtypes))
    if low < 0 or high > 255:
        raise InfSceneError(
            f"{kind} values range from {low:g} to {high:g}, but the iceplant model needs 8-bit values (0-255) like NAIP; "
            "convert the raster to 8 bits first (e.g. gdal_translate -ot Byte -scale)"
        )
    if any(dt.kind == "f" for dt in dtypes) and high <= 1.0:
        raise InfSceneError(
            f"{kind} values lie within 0-1 (reflectance?), but the iceplant model needs 8-bit values (0-255) like NAIP; "
            "multiply by 255 or convert to 8 bits first"
        )


def read_bands(ds: rasterio.DatasetReader, bands: IceplantBands, window: Window) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The window as {'r','g','b'[,'nir']: uint8 array} and its validity mask; call ``check_values`` first."""
    values, valid = _read_raw(ds, bands.indexes, window)
    if values.dtype != np.uint8:
        values = np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8)
    return dict(zip(bands.names, values)), valid
