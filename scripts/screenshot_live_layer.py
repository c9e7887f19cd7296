"""Screenshot of a live super-resolved layer in the real QGIS desktop, for docs/plugin.md; and a check that quitting
QGIS stops the layer's tile server.

    python3 scripts/screenshot_live_layer.py [INPUT] [OUTPUT]

INPUT defaults to the bundled Planet sample, OUTPUT to docs/images/plugin_live_layer_1366x768.png. Run as a plain
script, it prepares a QGIS profile with the plugin (scripts/qgis_profile.sh, in build/live-shot), starts QGIS under
Xvfb on a 1366x768 screen with this same file as its `--code`, and waits. Inside QGIS the file adds INPUT, presses
*Add live super-resolved layer* at 4x, waits until the server has rendered the tiles the map asks for and nothing has
been queued for a while, saves the window to OUTPUT and quits QGIS; the launcher then checks that the server's process
is gone. Needs qgis, xvfb-run and xauth, and an engine with `infscene serve` (the checkout's .venv, or INFSCENE_PYTHON).
Exit status 0 only when the screenshot was written and no server outlived QGIS.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

INSIDE = "INFSCENE_SHOT_DIR"  # set by the launcher for the copy of this file that QGIS runs (which has no __file__)
SCREEN = (1366, 768)
QGIS_TIMEOUT_S = 600
SCALE = 4.0
IDLE_S = 4.0  # the server must be idle this long before the screenshot (QGIS asks for tiles in waves)
SETTLE_MS = 3000  # then the canvas redraws with every tile in its cache


def launch(root: Path, source: Path, output: Path) -> int:
    """Outside QGIS: run QGIS under Xvfb on this file, then check what it reported."""
    work = root / "build" / "live-shot"
    work.mkdir(parents=True, exist_ok=True)
    status_path = work / "status.json"
    status_path.unlink(missing_ok=True)
    subprocess.run([str(root / "scripts" / "qgis_profile.sh"), str(work / "profiles")], check=True)
    env = {**os.environ, INSIDE: str(work), "INFSCENE_SHOT_INPUT": str(source), "INFSCENE_SHOT_OUTPUT": str(output),
           "GDAL_PAM_ENABLED": "NO"}
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24", "qgis", "--nologo", "--noversioncheck",
               "--profiles-path", str(work / "profiles"), "--code", str(Path(__file__).resolve())]
    with open(work / "qgis.log", "w") as log:
        try:
            subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=QGIS_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            print(f"live-layer screenshot: QGIS did not finish within {QGIS_TIMEOUT_S} s (see {work / 'qgis.log'})")
            return 1
    if not status_path.is_file():
        print(f"live-layer screenshot: QGIS never reported (see {work / 'qgis.log'})")
        return 1
    status = json.loads(status_path.read_text())
    print(json.dumps(status))
    if status.get("status") != "done":
        return 1
    if _alive(status["server_pid"]):
        print(f"live-layer screenshot: the tile server (pid {status['server_pid']}) outlived QGIS")
        return 1
    print(f"live-layer screenshot: {output}; the server stopped when QGIS quit")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def inside_qgis() -> None:
    """Inside the QGIS desktop (`qgis --code`): add the layer and its live layer, wait for the tiles, save, quit."""
    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import QTimer
    from qgis.utils import iface, plugins

    from infscene_qgis.engine_request import SrOptions

    work = Path(os.environ[INSIDE])
    started = time.monotonic()
    state = {"idle_since": None}

    def report(status: str, **details: object) -> None:
        (work / "status.json").write_text(json.dumps({"status": status, **details}))

    def fail(error: str) -> None:
        texts = [item.text() for item in iface.messageBar().items()]
        report("failed", error=error, messages=texts)
        quit_qgis()

    def quit_qgis() -> None:
        QgsProject.instance().setDirty(False)  # no "save the project?" question
        iface.actionExit().trigger()

    def start() -> None:
        plugin = plugins.get("infscene_qgis")
        if plugin is None or plugin.live is None:
            if time.monotonic() - started > 60:
                fail("the infscene_qgis plugin was not loaded")
            else:
                QTimer.singleShot(500, start)
            return
        window = iface.mainWindow()
        window.setGeometry(window.screen().availableGeometry())  # no window manager to maximise it
        source = iface.addRasterLayer(os.environ["INFSCENE_SHOT_INPUT"], f"{Path(os.environ['INFSCENE_SHOT_INPUT']).stem}")
        plugin.dock.set_options(SrOptions(scale=SCALE))
        iface.setActiveLayer(source)
        plugin.live_action.trigger()
        if not plugin.live.servers:
            fail("the live layer was refused")
            return
        iface.mapCanvas().setExtent(iface.mapCanvas().mapSettings().layerExtentToOutputExtent(source, source.extent()))
        wait(plugin.live.servers[0])

    def wait(server: object) -> None:
        if time.monotonic() - started > QGIS_TIMEOUT_S - 60:
            fail("no tiles were rendered in time")
            return
        if server not in plugins["infscene_qgis"].live.servers:
            fail("the server stopped")
            return
        activity = server.activity
        idle = activity is not None and activity.done > 0 and activity.queued == activity.rendering == 0
        if not idle:
            state["idle_since"] = None
        elif state["idle_since"] is None:
            state["idle_since"] = time.monotonic()
        elif time.monotonic() - state["idle_since"] >= IDLE_S:
            iface.mapCanvas().refresh()
            QTimer.singleShot(SETTLE_MS, lambda: save(server))
            return
        QTimer.singleShot(500, lambda: wait(server))

    def save(server: object) -> None:
        output = Path(os.environ["INFSCENE_SHOT_OUTPUT"])
        output.parent.mkdir(parents=True, exist_ok=True)
        if not iface.mainWindow().grab().save(str(output)):
            fail(f"cannot write {output}")
            return
        layer = QgsProject.instance().mapLayer(server.layer_id)
        report("done", output=str(output), server_pid=server.pid, layer=layer.name() if layer else None,
               tiles=server.activity.done, cached=server.activity.cached)
        quit_qgis()

    QTimer.singleShot(1000, start)


if os.environ.get(INSIDE) and "qgis" in sys.modules:
    inside_qgis()
elif __name__ == "__main__":
    ROOT = Path(__file__).resolve().parents[1]
    ARGUMENTS = sys.argv[1:]
    INPUT = Path(ARGUMENTS[0]) if ARGUMENTS else ROOT / "resources" / "sample" / "planet_sn7_brentwood_80px.tif"
    OUTPUT = Path(ARGUMENTS[1]) if len(ARGUMENTS) > 1 else ROOT / "docs" / "images" / "plugin_live_layer_1366x768.png"
    sys.exit(launch(ROOT, INPUT.resolve(), OUTPUT.resolve()))
