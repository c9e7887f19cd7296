"""The chosen extent's outline on the map: a line only (a fill tinted whatever lies under it, the result included),
shown while the panel is, redrawn when the map's CRS changes."""
from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle, QgsWkbTypes
from qgis.gui import QgsMapCanvas, QgsRubberBand
from qgis.PyQt.QtGui import QColor

COLOUR = QColor(255, 80, 0)


class ExtentOutline:
    """One rubber band on `canvas`; `show` replaces what it outlines, `clear` takes it off the map."""

    def __init__(self, canvas: QgsMapCanvas) -> None:
        self.canvas = canvas
        self.band = QgsRubberBand(canvas, QgsWkbTypes.PolygonGeometry)
        self.band.setStrokeColor(COLOUR)
        self.band.setFillColor(QColor(0, 0, 0, 0))
        self.band.setWidth(2)

    def show(self, extent: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> None:
        """Outline `extent` (in `crs`; the band reprojects it to the map's CRS); an empty extent clears it."""
        self.clear()
        if not extent.isEmpty():
            self.band.setToGeometry(QgsGeometry.fromRect(extent), crs)

    def clear(self) -> None:
        self.band.reset(QgsWkbTypes.PolygonGeometry)

    def dispose(self) -> None:
        """Before the plugin unloads: the band leaves the canvas's scene."""
        self.canvas.scene().removeItem(self.band)
