"""Runs inside the QGIS desktop (`qgis --code`): open the InfScene panel, super-resolve a small
extent of a real scene, and write status.json when the result is on the map.

Driven by scripts/gui_smoke.sh, which reads status.json and takes the screenshot. Settings come
from INFSCENE_SMOKE_* environment variables.
"""
import json
import os
import time
from pathlib import Path

from qgis.core import QgsRectangle
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.utils import iface, plugins

OUT = Path(os.environ["INFSCENE_SMOKE_DIR"])
INPUT = os.environ["INFSCENE_SMOKE_INPUT"]
MODEL = os.environ.get("INFSCENE_SMOKE_MODEL", "")
STARTED = time.monotonic()
PLUGIN_WAIT_S = 60.0


def report(status: str, **details: object) -> None:
    (OUT / "status.json").write_text(json.dumps({"status": status, **details}))


def start() -> None:
    plugin = plugins.get("infscene_qgis")
    if plugin is None or plugin.dock is None:
        if time.monotonic() - STARTED > PLUGIN_WAIT_S:
            report("failed", error="the infscene_qgis plugin was not loaded")
        else:
            QTimer.singleShot(500, start)
        return
    window = iface.mainWindow()
    window.setGeometry(window.screen().availableGeometry())  # no window manager to maximise it
    layer = iface.addRasterLayer(INPUT, "input (5 m)")
    dock = plugin.dock
    dock.model_widget.setFilePath(MODEL)
    dock.show()
    dock.raise_()
    window.resizeDocks([dock], [520], Qt.Horizontal)
    dock.layer_combo.setLayer(layer)
    full = layer.extent()
    # The left half of the scene, so the map shows the SR result beside the original.
    dock.set_extent(QgsRectangle(full.xMinimum(), full.yMinimum(), full.center().x(), full.yMaximum()))
    dock.steps_spin.setValue(4)
    dock.scale_spin.setValue(4.0)
    dock.output_widget.setFilePath(str(OUT / "smoke_sr.tif"))
    iface.mapCanvas().setExtent(full)
    dock.runFinished.connect(finished)
    dock.run()


def finished(outcome: object) -> None:
    iface.mapCanvas().refreshAllLayers()
    # Give the canvas time to draw the new layers before the screenshot.
    QTimer.singleShot(4000, lambda: report(
        "done" if outcome.succeeded else "failed", error=outcome.error, outputs=outcome.outputs,
        progress=None if outcome.progress is None else outcome.progress.fraction,
    ))


QTimer.singleShot(1000, start)
