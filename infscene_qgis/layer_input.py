"""From a QGIS raster layer to what the engine accepts: a file path and bounds in the layer's CRS.

The engine reads files with its own GDAL, so only layers backed by a file on disk can be handed
over; web services (WMS, XYZ, WCS) and in-memory datasets are refused here with advice, because
the engine would otherwise fail with a confusing "cannot open" on a URL.
"""
from __future__ import annotations

import os

from osgeo import gdal

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


def has_georeference(path: str) -> bool:
    """Whether GDAL finds a geotransform or a CRS in the file (QGIS shows a file without either in pixel units,
    y pointing down from 0: rows 0..H are y 0..-H)."""
    dataset = gdal.Open(path)
    if dataset is None:
        return True
    return dataset.GetGeoTransform(can_return_null=True) is not None or bool(dataset.GetProjection())


def engine_bounds(layer: QgsRasterLayer, extent: QgsRectangle) -> Bounds:
    """--bounds for `extent` of `layer`: in its CRS, or, for a file without georeference, in the pixel frame the engine
    reads (rasterio's identity transform: y = row, pointing down), which is QGIS's with y negated."""
    bounds = rectangle_bounds(extent)
    try:
        path = raster_file_path(layer)
    except InputError:
        return bounds
    if has_georeference(path):
        return bounds
    minx, miny, maxx, maxy = bounds
    return (minx, -maxy, maxx, -miny)


def rectangle_bounds(extent: QgsRectangle) -> Bounds:
    """(minx, miny, maxx, maxy) for the engine's --bounds; an empty rectangle is passed on as is
    so the engine, which owns the validation, reports it."""
    return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
