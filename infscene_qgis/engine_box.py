"""The panel's Engine group: which Python runs the engine, which model folder it loads, and what the engine says of
both (asked in the background the first time the panel is shown, and again on Check or a change of either)."""
from __future__ import annotations

from typing import Optional

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QGroupBox, QPushButton

from . import settings
from .engine_locator import configured_python
from .run_controller import RunController
from .text_label import TextLabel


class EngineBox(QGroupBox):
    """`changed()` when the interpreter or the model folder changes (what was planned or checked no longer holds)."""

    changed = pyqtSignal()

    def __init__(self, runs: RunController) -> None:
        super().__init__("Engine")
        self.runs = runs
        self._checked = False
        self.engine_python = QgsFileWidget()
        self.engine_python.setStorageMode(QgsFileWidget.GetFile)
        self.engine_python.setToolTip(
            "Python interpreter of the environment where the InfScene engine (torch, rasterio) is installed. "
            "Empty: INFSCENE_PYTHON, then .venv beside the plugin's source checkout."
        )
        self.model_widget = QgsFileWidget()
        self.model_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.model_widget.setToolTip("Model folder (config.json and model.safetensors); empty: the engine's default model")
        self.check_button = QPushButton("Check engine")
        self.check_button.setToolTip("Ask the engine for its versions, the device it will use and the model's status")
        self.check_button.clicked.connect(self.check)
        self.status = TextLabel("Not checked yet.")
        form = QFormLayout(self)
        form.setRowWrapPolicy(QFormLayout.WrapAllRows)  # labels above their fields: the paths get the panel's width
        form.addRow("Engine Python", self.engine_python)
        form.addRow("Model folder", self.model_widget)
        form.addRow(self.status)
        form.addRow(self.check_button)
        self.engine_python.setFilePath(configured_python())
        self.model_widget.setFilePath(settings.load_text(settings.MODEL_DIR_KEY))
        self.engine_python.fileChanged.connect(settings.save_engine_python)
        self.engine_python.fileChanged.connect(self._choice_changed)
        self.model_widget.fileChanged.connect(self._choice_changed)
        runs.engineChecked.connect(self._engine_checked)

    def model_dir(self) -> Optional[str]:
        """The chosen model folder; None: the engine's default model."""
        return self.model_widget.filePath().strip() or None

    def save_settings(self) -> None:
        settings.save_value(settings.MODEL_DIR_KEY, self.model_widget.filePath())

    def check_once(self) -> None:
        """Check the engine the first time the panel is shown, so the device is known up front."""
        if not self._checked:
            self.check()

    def check(self) -> None:
        """Ask the engine for versions, device, GPU and model in the background; the answer shows in `status`."""
        self._checked = True
        self.runs.check_engine(self.model_dir())
        self.check_button.setEnabled(not self.runs.checking)

    def _choice_changed(self, _path: str) -> None:
        """A different interpreter or model: re-check if on screen (else at the next show)."""
        self.changed.emit()
        if self.isVisible():
            self.check()
        else:
            self._checked = False

    def _engine_checked(self, text: str, _default_model: str) -> None:
        self.status.setText(text)
        self.check_button.setEnabled(not self.runs.checking)
