"""Drives the real QGIS desktop under Xvfb for the scripts that show or measure the plugin as an analyst meets it
(scripts/screenshot_results.py, scripts/measure_panel.py).

Both halves live here. Outside QGIS, `run_in_qgis` prepares a fresh profile with the plugin (scripts/qgis_profile.sh),
starts `qgis --code SCRIPT` on a virtual screen and returns the JSON status the script wrote. Inside QGIS (the
script adds this folder to sys.path from INFSCENE_SCRIPTS), `Session` waits for the plugin, writes that status and
quits QGIS without its "save the project?" question; whatever a script waits for fails with a clear message instead of
hanging: `when` and `deadline` give up after their timeout, and an exception in a guarded callback ends the session
with its traceback (an exception in a Qt slot would otherwise only reach QGIS's error bar). Run the scripts with Debian's /usr/bin/python3 and a PATH
without pyenv: QGIS's Python must not see another interpreter's paths.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict

SCREEN = (1366, 768)
WORK_VARIABLE = "INFSCENE_QGIS_WORK"  # the folder of the status file, set for the QGIS side
PLUGIN_WAIT_S = 60.0
TASKS_WAIT_S = 30.0  # inside QGIS, after the status: how long background tasks may take to end before QGIS quits
QUIT_GRACE_S = 60.0  # outside, after the status: how long QGIS may take to quit before it is killed


def run_in_qgis(root: Path, work: Path, script: Path, env: Dict[str, str], timeout_s: float) -> Dict[str, Any]:
    """Outside QGIS: run QGIS under Xvfb on `script` and return what it reported ({"status": "failed", ...} when it
    reported nothing). Once the status is written QGIS has QUIT_GRACE_S to quit (a dialog on exit would otherwise keep
    it open until `timeout_s`); then it and its virtual screen are killed, and the status stands."""
    work.mkdir(parents=True, exist_ok=True)
    status_path = work / "status.json"
    status_path.unlink(missing_ok=True)
    shutil.rmtree(work / "profiles", ignore_errors=True)  # a fresh profile: default options, no window state kept
    subprocess.run([str(root / "scripts" / "qgis_profile.sh"), str(work / "profiles")], check=True)
    env = {**os.environ, **env, WORK_VARIABLE: str(work), "INFSCENE_SCRIPTS": str(root / "scripts"),
           "GDAL_PAM_ENABLED": "NO"}
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24", "qgis", "--nologo", "--noversioncheck",
               "--profiles-path", str(work / "profiles"), "--code", str(script.resolve())]
    started = time.monotonic()
    reported = None  # when the status appeared
    killed = False
    with open(work / "qgis.log", "w") as log:
        # A session of its own: xvfb-run, Xvfb and QGIS are one process group, killed together if need be.
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while process.poll() is None:
            now = time.monotonic()
            if reported is None and status_path.is_file():
                reported = now
            if now - started > timeout_s or (reported is not None and now - reported > QUIT_GRACE_S):
                _kill_group(process)
                killed = True
                break
            time.sleep(0.5)
    if not status_path.is_file():
        if killed:
            return {"status": "failed", "error": f"QGIS did not finish within {timeout_s:.0f} s (see {work}/qgis.log)"}
        return {"status": "failed", "error": f"QGIS never reported (see {work / 'qgis.log'})"}
    status = json.loads(status_path.read_text())
    if killed:
        status["quit"] = f"QGIS did not quit within {QUIT_GRACE_S:.0f} s of reporting and was killed"
    return status


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM to the process group this launcher started (xvfb-run, Xvfb, QGIS), then SIGKILL to whatever of it is
    left: xvfb-run can end before QGIS does."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(2)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class Session:
    """Inside QGIS: `Session(start).begin()` calls start(plugin) once the InfScene plugin is loaded; `done(**details)`
    or `fail(error)` writes the status and quits QGIS."""

    def __init__(self, start: Callable[[Any], None]) -> None:
        self.work = Path(os.environ[WORK_VARIABLE])
        self.started = time.monotonic()
        self._start = start
        self._finished = False

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
        self.guard(self._start)(plugin)

    def guard(self, callback: Callable[..., None]) -> Callable[..., None]:
        """`callback` for a signal or a timer: an exception in it fails the session with its traceback, and nothing
        runs any more once the session has finished."""

        def guarded(*args: Any) -> None:
            if self._finished:
                return
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - reported in the status, not left to QGIS's error bar
                self.fail(f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())

        return guarded

    def deadline(self, what: str, timeout_s: float) -> Callable[[], None]:
        """Fail saying `what` did not happen within `timeout_s`, unless the returned function is called first (for a
        wait on a signal)."""
        from qgis.PyQt.QtCore import QTimer

        met = []

        def expire() -> None:
            if not met and not self._finished:
                self.fail(f"{what} did not happen within {timeout_s:g} s")

        QTimer.singleShot(int(timeout_s * 1000), expire)
        return lambda: met.append(True)

    def when(self, condition: Callable[[], bool], then: Callable[[], None], what: str, timeout_s: float) -> None:
        """Call `then` once `condition` holds (polled on the event loop), or fail saying `what` did not happen."""
        from qgis.PyQt.QtCore import QTimer

        deadline = time.monotonic() + timeout_s

        def poll() -> None:
            if condition():
                then()
            elif time.monotonic() > deadline:
                self.fail(f"{what} did not happen within {timeout_s:g} s")
            else:
                QTimer.singleShot(250, guarded_poll)

        guarded_poll = self.guard(poll)
        guarded_poll()

    def save_window(self, path: Path) -> None:
        """The main window as the user sees it (1366x768 on the virtual screen)."""
        from qgis.utils import iface

        path.parent.mkdir(parents=True, exist_ok=True)
        if not iface.mainWindow().grab().save(str(path)):
            raise OSError(f"cannot write {path}")

    def done(self, **details: Any) -> None:
        self._finish({"status": "done", **details})

    def fail(self, error: str, **details: Any) -> None:
        from qgis.utils import iface

        self._finish({"status": "failed", "error": error, **details,
                      "messages": [item.text() for item in iface.messageBar().items()]})

    def _finish(self, status: Dict[str, Any]) -> None:
        from qgis.core import QgsProject
        from qgis.utils import iface

        if self._finished:
            return  # the first outcome stands (a deadline can expire while QGIS is quitting)
        self._finished = True
        written = self.work / "status.json.part"
        written.write_text(json.dumps(status, indent=1))
        written.replace(self.work / "status.json")  # whole, never half-written, when the launcher sees it
        QgsProject.instance().setDirty(False)  # no "save the project?" question
        self._quit_when_idle(time.monotonic() + TASKS_WAIT_S)

    def _quit_when_idle(self, deadline: float) -> None:
        """Quit once QGIS's background tasks (the plugin's engine check, say) have ended: with one running, QGIS asks
        whether to cancel it before it quits, a dialog no one answers on a virtual screen."""
        from qgis.core import QgsApplication
        from qgis.PyQt.QtCore import QTimer
        from qgis.utils import iface

        manager = QgsApplication.taskManager()
        if manager.countActiveTasks() > 0 and time.monotonic() < deadline:
            manager.cancelAll()
            QTimer.singleShot(250, lambda: self._quit_when_idle(deadline))
            return
        iface.actionExit().trigger()
