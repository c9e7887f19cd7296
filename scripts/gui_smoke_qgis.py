"""Runs inside the QGIS desktop (`qgis --code`): open the InfScene panel, super-resolve a small
extent of a real scene, and write status.json when the result is on the map.

Driven by scripts/gui_smoke.sh, which reads status.json and takes the screenshot. Settings come
from INFSCENE_SMOKE_* environment variables.
"""
import json
import os
import time
from pathlib import Path

import numpy as np
from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QSize, Qt, QTimer
from qgis.PyQt.QtGui import QImage
from qgis.utils import iface, plugins

OUT = Path(os.environ["INFSCENE_SMOKE_DIR"])
INPUT = os.environ["INFSCENE_SMOKE_INPUT"]
MODEL = os.environ.get("INFSCENE_SMOKE_MODEL", "")
STARTED = time.monotonic()
PLUGIN_WAIT_S = 60.0
COLOUR_TOLERANCE = 2.0  # 8-bit levels of mean drawn colour; the input's own stretch gives ~0, a stretch of its own ~15


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
    dock.engine_box.model_widget.setFilePath(MODEL)
    dock.show()
    dock.raise_()
    window.resizeDocks([dock], [520], Qt.Horizontal)
    dock.layer_combo.setLayer(layer)
    full = layer.extent()
    # The left half of the scene, so the map shows the SR result beside the original.
    dock.set_extent(QgsRectangle(full.xMinimum(), full.yMinimum(), full.center().x(), full.yMaximum()))
    dock.fields["steps"].setValue(4)
    dock.fields["scale"].setValue(4.0)
    dock.output_widget.setFilePath(str(OUT / "smoke_sr.tif"))
    iface.mapCanvas().setExtent(full)
    dock.runs.finished.connect(finished)
    dock.run()


def mean_colour(layer: object, extent: QgsRectangle) -> list:
    """Mean R, G, B of `layer` drawn alone over `extent` by the desktop's own renderer."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(128, 256))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage().convertToFormat(QImage.Format_RGB888)
    pixels = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
    rows = pixels.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3]
    return [round(float(v), 1) for v in rows.reshape(image.height(), image.width(), 3).mean(axis=(0, 1))]


def colours(outcome: object) -> dict:
    """The drawn extent as the input layer and as the result layer show it: alike when the stretch is shared."""
    if not outcome.succeeded:
        return {}
    by_name = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    extent = plugins["infscene_qgis"].dock.extent()
    return {"input_mean_rgb": mean_colour(by_name["input (5 m)"], extent),
            "result_mean_rgb": mean_colour(by_name["smoke_sr"], extent)}


def report_outcome(outcome: object) -> None:
    drawn = colours(outcome)
    error = outcome.error
    if drawn and max(abs(a - b) for a, b in zip(drawn["input_mean_rgb"], drawn["result_mean_rgb"])) > COLOUR_TOLERANCE:
        error = "the result is drawn in other colours than the input layer"
    report("done" if outcome.succeeded and error is None else "failed", error=error, outputs=outcome.outputs,
           progress=None if outcome.progress is None else outcome.progress.fraction, **drawn)


def finished(outcome: object) -> None:
    iface.mapCanvas().refreshAllLayers()
    # Give the canvas time to draw the new layers before the screenshot.
    QTimer.singleShot(4000, lambda: report_outcome(outcome))


QTimer.singleShot(1000, start)
