"""Swipe compare: left of a vertical line the map shows the run's input, right of it whatever the canvas draws
(the result on top). Drag (or move with the button held) to move the line; Esc or another tool ends it.

The input is rendered alone for the canvas's current view into an image (a render job, redone whenever the canvas
redraws), and a canvas item paints its left part over the map, so neither layer's visibility or order changes.
"""
from __future__ import annotations

from typing import Any, Optional

from qgis.core import QgsMapRendererParallelJob, QgsMapSettings, QgsRasterLayer
from qgis.gui import QgsMapCanvas, QgsMapCanvasItem, QgsMapTool
from qgis.PyQt.QtCore import QRectF, Qt
from qgis.PyQt.QtGui import QColor, QImage, QPainter, QPen


class SwipeItem(QgsMapCanvasItem):
    """Paints the input's image left of `position` (canvas pixels) and the dividing line."""

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.image: Optional[QImage] = None
        self.position = canvas.width() / 2.0
        self.setZValue(100)

    def paint(self, painter: QPainter, *_args: Any) -> None:  # noqa: D401 - Qt override
        if self.image is None:
            return
        ratio = self.image.devicePixelRatio() or 1.0
        height = self.image.height() / ratio
        x = max(0.0, min(self.position, self.image.width() / ratio))
        painter.drawImage(QRectF(0, 0, x, height), self.image, QRectF(0, 0, x * ratio, self.image.height()))
        painter.setPen(QPen(QColor(255, 255, 255), 2))
        painter.drawLine(int(x), 0, int(x), int(height))
        painter.setPen(QPen(QColor(0, 0, 0), 1, Qt.DashLine))
        painter.drawLine(int(x), 0, int(x), int(height))


class SwipeTool(QgsMapTool):
    """The map tool of the compare: the line follows a press-and-drag (or a click)."""

    def __init__(self, canvas: QgsMapCanvas, source: QgsRasterLayer, result: QgsRasterLayer) -> None:
        super().__init__(canvas)
        self.source = source
        self.result = result
        self.item = SwipeItem(canvas)
        self._job: Optional[QgsMapRendererParallelJob] = None
        self._pressed = False
        self.setCursor(Qt.SplitHCursor)
        canvas.mapCanvasRefreshed.connect(self.render_source)
        self.item.setRect(canvas.extent())
        self.render_source()

    def input_settings(self) -> QgsMapSettings:
        """The canvas's view with the input layer alone."""
        settings = QgsMapSettings(self.canvas().mapSettings())
        settings.setLayers([self.source])
        return settings

    def render_source(self) -> None:
        if self._job is not None:
            return
        self._job = QgsMapRendererParallelJob(self.input_settings())
        self._job.finished.connect(self._rendered)
        self._job.start()

    def _rendered(self) -> None:
        job, self._job = self._job, None
        if job is None or self.item is None:  # the swipe ended while the input was being drawn
            return
        self.item.image = job.renderedImage()
        self.item.setRect(self.canvas().extent())
        self.item.update()

    def set_position(self, x: float) -> None:
        self.item.position = x
        self.item.update()

    def canvasPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._pressed = True
        self.set_position(event.pos().x())

    def canvasMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self._pressed:
            self.set_position(event.pos().x())

    def canvasReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._pressed = False
        self.set_position(event.pos().x())

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.key() == Qt.Key_Escape:
            self.canvas().unsetMapTool(self)

    def deactivate(self) -> None:
        self.deactivate_swipe(unset=False)
        super().deactivate()

    def deactivate_swipe(self, unset: bool = True) -> None:
        """Take the image off the map and stop following redraws (also when another tool is chosen)."""
        try:
            self.canvas().mapCanvasRefreshed.disconnect(self.render_source)
        except TypeError:
            pass
        if self.item is not None:
            self.canvas().scene().removeItem(self.item)
            self.item = None
        if unset and self.canvas().mapTool() is self:
            self.canvas().unsetMapTool(self)
