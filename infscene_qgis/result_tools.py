"""The last result's tools under the panel's Run button: zoom to it, open its folder, swipe-compare it with its input.

They act on the layers a run added (by layer id, so a layer the user removed is noticed, not used) and stay off until
a run has added one.
"""
from __future__ import annotations

from typing import Optional

from qgis.core import QgsProject, QgsRasterLayer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import QHBoxLayout, QPushButton, QWidget

from .compare import SwipeTool


class ResultTools(QWidget):
    """A row of three buttons for the last result; `message(text)` says why a tool could not act."""

    message = pyqtSignal(str)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__()
        self.canvas = canvas
        self._layer_id = ""
        self._input_layer_id = ""
        self._folder = ""
        self._swipe: Optional[SwipeTool] = None
        self.zoom_button = QPushButton("Zoom to")
        self.zoom_button.setToolTip("Zoom the map to the last result")
        self.zoom_button.clicked.connect(self.zoom_to_result)
        self.folder_button = QPushButton("Folder")
        self.folder_button.setToolTip("Open the folder of the last result in the file manager")
        self.folder_button.clicked.connect(self.open_folder)
        self.compare_button = QPushButton("Swipe")
        self.compare_button.setCheckable(True)
        self.compare_button.setToolTip("Drag on the map: the input shows left of the line, the result right of it")
        self.compare_button.toggled.connect(self.set_compare)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for button in self.buttons():
            button.setEnabled(False)
            row.addWidget(button)

    def buttons(self) -> tuple:
        return self.zoom_button, self.folder_button, self.compare_button

    def show_result(self, layer_id: str, input_layer_id: str, folder: str) -> None:
        """A run added `layer_id` (made from `input_layer_id`) with its files in `folder`: the tools act on it."""
        self.set_compare(False)
        self._layer_id, self._input_layer_id, self._folder = layer_id, input_layer_id, folder
        for button in self.buttons():
            button.setEnabled(True)

    def result_layer(self) -> Optional[QgsRasterLayer]:
        layer = QgsProject.instance().mapLayer(self._layer_id) if self._layer_id else None
        return layer if isinstance(layer, QgsRasterLayer) else None

    def zoom_to_result(self) -> None:
        layer = self.result_layer()
        if layer is None:
            self.message.emit("zoom: the result is no longer in the project")
            return
        self.canvas.setExtent(self.canvas.mapSettings().layerExtentToOutputExtent(layer, layer.extent()))
        self.canvas.refresh()

    def open_folder(self) -> None:
        if self._folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self._folder))

    def set_compare(self, on: bool) -> None:
        """Swipe between the run's input (left of the line) and its result (right); off ends the swipe."""
        if self._swipe is not None:
            self._swipe.deactivate_swipe()
            self._swipe = None
        if on:
            result = self.result_layer()
            source = QgsProject.instance().mapLayer(self._input_layer_id)
            if result is None or not isinstance(source, QgsRasterLayer):
                self.compare_button.setChecked(False)
                self.message.emit("compare: the result or its input layer is no longer in the project")
                return
            self._swipe = SwipeTool(self.canvas, source, result)
            self._swipe.deactivated.connect(self._swipe_ended)
            self.canvas.setMapTool(self._swipe)
        elif self.compare_button.isChecked():
            self.compare_button.setChecked(False)

    def _swipe_ended(self) -> None:
        self.compare_button.setChecked(False)
