"""From a QGIS raster layer to what the engine accepts: a file path and bounds in the layer's CRS (or pixel frame).

The engine reads files with its own GDAL, so only layers backed by a file on disk can be handed
over; web services (WMS, XYZ, WCS) and in-memory datasets are refused here with advice, because
the engine would otherwise fail with a confusing "cannot open" on a URL.
"""
from __future__ import annotations

import os

from qgis.core import QgsProviderRegistry, QgsRasterLayer, QgsRectangle

from .engine_request import Bounds


class InputError(Exception):
    """The chosen input cannot be sent to the engine; the message says why and what to do."""


def raster_file_path(layer: QgsRasterLayer) -> str:
    """The GDAL path of a file-backed raster layer (with a /vsizip/-style prefix when it has one)."""
    advice = "save it as a GeoTIFF first (Raster > Conversion > Translate) and run InfScene on that file"
    if layer.providerType() != "gdal":
        raise InputError(
            f"layer '{layer.name()}' comes from the '{layer.providerType()}' provider, not from a file; {advice}"
        )
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = str(parts.get("path") or "")
    if not os.path.isfile(path):
        raise InputError(f"layer '{layer.name()}' is not a file on disk ({layer.source()}); {advice}")
    return f"{parts.get('vsiPrefix') or ''}{path}{parts.get('vsiSuffix') or ''}"


def rectangle_bounds(extent: QgsRectangle) -> Bounds:
    """(minx, miny, maxx, maxy) for the engine's --bounds, in the layer's CRS, or for a raster without georeference in
    QGIS's pixel frame (x = column, y = -row), which the engine reads such a raster in too; an empty rectangle is
    passed on as is so the engine, which owns the validation, reports it."""
    return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
