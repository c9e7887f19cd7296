"""Where a run reads and what it writes, decided once for both planners.

plan.py's full plan (which loads the model) and quick_plan.py's torch-free one (the plugin's call on every change)
both call `plan_geometry`: the bands, the input window, the output's size, transform and profile, and every note
about them, so the size the panel shows and the warnings it lists are the run's own, word for word.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import rasterio
from affine import Affine
from rasterio.windows import Window

from ..modelformat.contract import ModelContract
from .io import BandLayout, is_georeferenced, output_grid, output_profile, profile_bytes, resolve_bands, resolve_window


@dataclass(frozen=True)
class RunGeometry:
    """The bands, the window read (the extent, before any context margin) and the output written."""

    layout: BandLayout
    window: Window
    height: int
    width: int
    transform: Affine
    profile: dict  # the output GeoTIFF's (raster.io.output_profile)
    notes: tuple[str, ...]  # what the user should know about them, in the order found

    @property
    def scale(self) -> float:
        return mean_scale(self.window, self.height, self.width)

    @property
    def output_bytes(self) -> int:
        return profile_bytes(self.profile)


def plan_geometry(ds: rasterio.DatasetReader, bounds: Optional[Sequence[float]], bands: Optional[Sequence[int]],
                  scale: Optional[float], target_res: Optional[float], contract: ModelContract) -> RunGeometry:
    """The run's geometry from the user's extent, bands and size (exactly one of `scale` and `target_res`); the
    model's contract says which scales it was trained for. Raises InfSceneError for what stops a run."""
    notes: list[str] = []
    layout = resolve_bands(ds, bands)
    window = resolve_window(ds, bounds, notes)
    height, width, transform = output_grid(ds, window, scale, target_res)
    notes.extend(_notes(ds, window, height, width, contract))
    return RunGeometry(layout, window, height, width, transform, output_profile(ds, layout, height, width, transform),
                       tuple(notes))


def mean_scale(window: Window, height: int, width: int) -> float:
    """A run's scale factor: the mean of the two axes' ratios (they differ by the rounding to whole pixels)."""
    return (width / window.width + height / window.height) / 2.0


def _notes(ds: rasterio.DatasetReader, window: Window, height: int, width: int, contract: ModelContract) -> list[str]:
    notes = []
    scale = mean_scale(window, height, width)
    if not is_georeferenced(ds):
        notes.append(f"{Path(ds.name).name} has no georeference (no CRS, no geotransform): it is placed as QGIS draws it "
                     "(x = column, y = -row) and the output, north-up, over it in that frame, without a CRS")
    elif ds.crs is not None and not (ds.crs.is_geographic or ds.crs.is_projected):
        wkt = ds.crs.to_wkt()
        name = wkt.split('"')[1] if wkt.count('"') >= 2 else wkt[:40]
        notes.append(f"the CRS of {Path(ds.name).name} is not one PROJ knows (a local system named {name!r}: an unknown "
                     "EPSG code?): the output carries it as it is, and GIS software may not place it; check the input's "
                     "georeference")
    if height == window.height or width == window.width:
        notes.append(f"scale {scale:.4g} adds no pixel on at least one axis ({window.width}x{window.height} -> "
                     f"{width}x{height}): the output keeps the input's pixel size there")
    if not contract.scale_min <= scale <= contract.scale_max:
        notes.append(f"scale {scale:.3g} is outside the range the model was trained on "
                     f"({contract.scale_min:g}-{contract.scale_max:g}): expect weaker detail")
    return notes
