"""Screenshots of a finished run in the real QGIS desktop, for docs/plugin.md: the swipe compare between the input and
its result, and the result layers' names with the spread's legend.

    /usr/bin/python3 scripts/screenshot_results.py [INPUT]

INPUT defaults to the bundled Planet sample (80 x 80 px of 4.77 m, int16). Run as a plain script, it starts QGIS
under Xvfb on a 1366x768 screen with this same file as its code (scripts/qgis_desktop.py). Inside QGIS the file adds
INPUT, opens the InfScene panel with its defaults (the engine's default model) but for Scale 4 and Samples 2, waits for
the engine check and the planning call, presses Run, and once the result is on the map:

1. presses Zoom to result and Swipe compare (the line stays in the middle of the map) and saves
   docs/images/plugin_swipe_compare_1366x768.png;
2. ends the swipe, closes the panel and the Browser, widens the Layers panel, expands the layer tree, ticks the spread
   layer and saves docs/images/plugin_result_names_1366x768.png.

It prints what QGIS reported (the result group's layer names among it); exit status 0 only when both were saved.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

INPUT_VARIABLE = "INFSCENE_SHOT_INPUT"
IMAGES_VARIABLE = "INFSCENE_SHOT_IMAGES"
SCALE = 4.0
SAMPLES = 2  # two seeds: the spread layer and its legend
PANEL_WIDTH = 328  # QGIS's default right dock width at 1366x768: the panel as a new user sees it
LAYERS_WIDTH = 760  # room for `<layer> x4 e2diffsr 1.19 m spread (2 samples, p98 ... DN)` and the legend's labels
RUN_TIMEOUT_S = 420.0
SETTLE_MS = 2500  # the canvas and the swipe's own render of the input draw before each screenshot
QGIS_TIMEOUT_S = 600.0
SWIPE_PNG = "plugin_swipe_compare_1366x768.png"
NAMES_PNG = "plugin_result_names_1366x768.png"


def launch(root: Path, source: Path) -> int:
    """Outside QGIS: run QGIS on this file and report."""
    from qgis_desktop import run_in_qgis

    work = root / "build" / "results-shot"
    shutil.rmtree(work / "out", ignore_errors=True)
    env = {INPUT_VARIABLE: str(source), IMAGES_VARIABLE: str(root / "docs" / "images")}
    status = run_in_qgis(root, work, Path(__file__), env, QGIS_TIMEOUT_S)
    print(json.dumps(status, indent=1))
    return 0 if status.get("status") == "done" else 1


def inside_qgis() -> None:
    """Inside the QGIS desktop: one run, then the two screenshots."""
    sys.path.insert(0, os.environ["INFSCENE_SCRIPTS"])
    from qgis_desktop import Session

    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import Qt, QTimer
    from qgis.PyQt.QtWidgets import QDockWidget
    from qgis.utils import iface

    from infscene_qgis.engine_request import SrOptions

    images = Path(os.environ[IMAGES_VARIABLE])
    source_path = Path(os.environ[INPUT_VARIABLE])
    canvas = iface.mapCanvas()
    state: dict = {}

    def start(plugin: object) -> None:
        dock = state["dock"] = plugin.dock
        source = iface.addRasterLayer(str(source_path), source_path.stem)
        iface.setActiveLayer(source)  # the panel follows the active layer
        dock.show()
        dock.raise_()
        iface.mainWindow().resizeDocks([dock], [PANEL_WIDTH], Qt.Horizontal)
        dock.set_options(SrOptions(scale=SCALE, samples=SAMPLES))
        dock.output_widget.setFilePath(str(session.work / "out" / f"{source_path.stem}_sr.tif"))
        dock.runs.finished.connect(finished)
        # The result's name takes the model from the plan, which knows it once the engine check has answered.
        session.when(lambda: bool(dock.runs.engine_model_path) and dock._plan is not None and dock._plan.model is not None,
                     run, "the engine check and the planning call", RUN_TIMEOUT_S)

    def run() -> None:
        problems = state["dock"]._plan.problems
        if problems:
            session.fail(f"the panel's checks refuse the run: {problems}")
            return
        state["dock"].run()

    def finished(outcome: object) -> None:
        dock = state["dock"]
        if not outcome.succeeded or dock.result_tools.result_layer() is None:
            session.fail(f"the run failed: {outcome.error or dock.status_label.text()}")
            return
        iface.messageBar().clearWidgets()  # "Wrote ..." would cover the map's top (the panel says it too)
        dock.result_tools.zoom_to_result()
        dock.result_tools.compare_button.setChecked(True)
        session.when(lambda: dock.result_tools._swipe is not None and dock.result_tools._swipe.item.image is not None and not canvas.isDrawing(),
                     lambda: QTimer.singleShot(SETTLE_MS, save_swipe), "the swipe's drawing", 60)

    def save_swipe() -> None:
        session.save_window(images / SWIPE_PNG)
        dock = state["dock"]
        dock.result_tools.compare_button.setChecked(False)
        dock.hide()
        window = iface.mainWindow()
        window.findChild(QDockWidget, "Browser").hide()
        window.resizeDocks([window.findChild(QDockWidget, "Layers")], [LAYERS_WIDTH], Qt.Horizontal)
        group = QgsProject.instance().layerTreeRoot().children()[0]
        for node in group.findLayers():
            if " spread (" in node.name():
                node.setItemVisibilityChecked(True)
        iface.layerTreeView().expandAll()
        canvas.refreshAllLayers()
        state["names"] = [group.name(), *(node.name() for node in group.findLayers())]
        QTimer.singleShot(1000, lambda: session.when(lambda: not canvas.isDrawing(),
                                                     lambda: QTimer.singleShot(SETTLE_MS, save_names),
                                                     "the map's drawing", 60))

    def save_names() -> None:
        session.save_window(images / NAMES_PNG)
        session.done(images=[str(images / SWIPE_PNG), str(images / NAMES_PNG)], layers=state["names"],
                     panel_status=state["dock"].status_label.text())

    session = Session(start)
    session.begin()


if os.environ.get(INPUT_VARIABLE) and "qgis" in sys.modules:
    inside_qgis()
elif __name__ == "__main__":
    ROOT = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(ROOT / "scripts"))
    ARGUMENTS = sys.argv[1:]
    INPUT = Path(ARGUMENTS[0]) if ARGUMENTS else ROOT / "resources" / "sample" / "planet_sn7_brentwood_80px.tif"
    sys.exit(launch(ROOT, INPUT.resolve()))
