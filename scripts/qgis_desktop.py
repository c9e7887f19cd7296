"""Drives the real QGIS desktop under Xvfb for the scripts that show or measure the plugin as an analyst meets it
(scripts/screenshot_results.py, scripts/measure_panel.py).

Both halves live here. Outside QGIS, `run_in_qgis` prepares a fresh profile with the plugin (scripts/qgis_profile.sh),
starts `qgis --code SCRIPT` on a virtual screen and returns the JSON status the script wrote. Inside QGIS (the
script adds this folder to sys.path from INFSCENE_SCRIPTS), `Session` waits for the plugin, writes that status and
quits QGIS without its "save the project?" question. Run the scripts with Debian's /usr/bin/python3 and a PATH
without pyenv: QGIS's Python must not see another interpreter's paths.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict

SCREEN = (1366, 768)
WORK_VARIABLE = "INFSCENE_QGIS_WORK"  # the folder of the status file, set for the QGIS side
PLUGIN_WAIT_S = 60.0


def run_in_qgis(root: Path, work: Path, script: Path, env: Dict[str, str], timeout_s: float) -> Dict[str, Any]:
    """Outside QGIS: run QGIS under Xvfb on `script` and return what it reported ({"status": "failed", ...} when it
    reported nothing)."""
    work.mkdir(parents=True, exist_ok=True)
    status_path = work / "status.json"
    status_path.unlink(missing_ok=True)
    shutil.rmtree(work / "profiles", ignore_errors=True)  # a fresh profile: default options, no window state kept
    subprocess.run([str(root / "scripts" / "qgis_profile.sh"), str(work / "profiles")], check=True)
    env = {**os.environ, **env, WORK_VARIABLE: str(work), "INFSCENE_SCRIPTS": str(root / "scripts"),
           "GDAL_PAM_ENABLED": "NO"}
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24", "qgis", "--nologo", "--noversioncheck",
               "--profiles-path", str(work / "profiles"), "--code", str(script.resolve())]
    with open(work / "qgis.log", "w") as log:
        try:
            subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "error": f"QGIS did not finish within {timeout_s:.0f} s (see {work}/qgis.log)"}
    if not status_path.is_file():
        return {"status": "failed", "error": f"QGIS never reported (see {work / 'qgis.log'})"}
    return json.loads(status_path.read_text())


class Session:
    """Inside QGIS: `Session(start).begin()` calls start(plugin) once the InfScene plugin is loaded; `done(**details)`
    or `fail(error)` writes the status and quits QGIS."""

    def __init__(self, start: Callable[[Any], None]) -> None:
        self.work = Path(os.environ[WORK_VARIABLE])
        self.started = time.monotonic()
        self._start = start

    def begin(self) -> None:
        from qgis.PyQt.QtCore import QTimer

        QTimer.singleShot(1000, self._wait_for_plugin)

    def _wait_for_plugin(self) -> None:
        from qgis.PyQt.QtCore import QTimer
        from qgis.utils import iface, plugins

        plugin = plugins.get("infscene_qgis")
        if plugin is None or plugin.dock is None:
            if time.monotonic() - self.started > PLUGIN_WAIT_S:
                self.fail("the infscene_qgis plugin was not loaded")
            else:
                QTimer.singleShot(500, self._wait_for_plugin)
            return
        window = iface.mainWindow()
        window.setGeometry(window.screen().availableGeometry())  # no window manager to maximise it
        self._start(plugin)

    def when(self, condition: Callable[[], bool], then: Callable[[], None], what: str, timeout_s: float) -> None:
        """Call `then` once `condition` holds (polled on the event loop), or fail saying `what` did not happen."""
        from qgis.PyQt.QtCore import QTimer

        deadline = time.monotonic() + timeout_s

        def poll() -> None:
            if condition():
                then()
            elif time.monotonic() > deadline:
                self.fail(f"{what} did not happen within {timeout_s:.0f} s")
            else:
                QTimer.singleShot(250, poll)

        poll()

    def save_window(self, path: Path) -> None:
        """The main window as the user sees it (1366x768 on the virtual screen)."""
        from qgis.utils import iface

        path.parent.mkdir(parents=True, exist_ok=True)
        if not iface.mainWindow().grab().save(str(path)):
            raise OSError(f"cannot write {path}")

    def done(self, **details: Any) -> None:
        self._finish({"status": "done", **details})

    def fail(self, error: str) -> None:
        from qgis.utils import iface

        self._finish({"status": "failed", "error": error,
                      "messages": [item.text() for item in iface.messageBar().items()]})

    def _finish(self, status: Dict[str, Any]) -> None:
        from qgis.core import QgsProject
        from qgis.utils import iface

        (self.work / "status.json").write_text(json.dumps(status, indent=1))
        QgsProject.instance().setDirty(False)  # no "save the project?" question
        iface.actionExit().trigger()
