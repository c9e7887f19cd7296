"""Runs one engine command in the background for the dock and the live layers (a run, a tile server), and the fast
planning call.

Neither is a QgsTask: QGIS 3.22 reports every task that ends after a cancel as "Task failed" in its message
bar (and one that returns True as "Task complete"), and it cannot silence a task before 3.26. So a cancelled
run would read as a failure outside the panel. The work runs on a plain Python thread that touches no QObject
and reports through signals, which Qt delivers on the main thread; the panel shows the progress itself and in
the status bar. Everything the main thread needs afterwards is a plain RunOutcome.
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .engine_events import Event, Plan, Progress, QuickPlan, RunWarning, parse_event
from .engine_runner import _NO_WINDOW, EngineCancelled, EngineError, EngineRunner, engine_environment

LOG_TAG = "InfScene"
PLAN_TIMEOUT_S = 30.0


@dataclass
class RunOutcome:
    """What a finished (or failed, or cancelled) run left behind, as plain Python data."""

    outputs: List[str] = field(default_factory=list)
    plan: Optional[Plan] = None
    progress: Optional[Progress] = None
    warnings: List[str] = field(default_factory=list)
    error: Optional[str] = None
    cancelled: bool = False
    started: float = 0.0  # time.monotonic() when the engine was started
    first_progress_s: Optional[float] = None  # seconds from the start to the first progress event
    elapsed_s: Optional[float] = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.cancelled


class EngineJob(QObject):
    """Runs `python -m infscene <arguments>` on a thread; `progressChanged(percent)`, `eventReceived(event)` (every
    protocol event, for commands such as `serve` whose events are not a run's) and `finished(RunOutcome)` arrive on
    the main thread. `cancel()` stops the engine (SIGTERM: it removes its partial files). `pid` is the engine's
    process id once it has started."""

    progressChanged = pyqtSignal(float)
    eventReceived = pyqtSignal(object)
    finished = pyqtSignal(object)

    def __init__(self, description: str, runner: EngineRunner, arguments: Sequence[str]) -> None:
        super().__init__()
        self.description = description
        self.outcome = RunOutcome()
        self._runner = runner
        self._arguments = list(arguments)
        self._cancel = threading.Event()
        self.pid: Optional[int] = None
        self._thread = threading.Thread(target=self._run, name="InfScene engine", daemon=True)

    def start(self) -> None:
        self.outcome.started = time.monotonic()
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Block until the engine has exited (after a cancel: once it has removed its files)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        QgsMessageLog.logMessage("running: " + " ".join(self._runner.command(self._arguments)), LOG_TAG, Qgis.Info)
        try:
            self.outcome.outputs = self._runner.run(self._arguments, self._record, self._cancel.is_set,
                                                    self._started)
        except EngineCancelled:
            self.outcome.cancelled = True
        except EngineError as exc:
            self.outcome.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must still end the run in the panel, not hang it
            self.outcome.error = f"{type(exc).__name__}: {exc}"
        self.outcome.elapsed_s = time.monotonic() - self.outcome.started
        self.finished.emit(self.outcome)

    def _started(self, pid: int) -> None:
        self.pid = pid

    def _record(self, event: Event) -> None:
        self.eventReceived.emit(event)
        if isinstance(event, Plan):
            self.outcome.plan = event
        elif isinstance(event, Progress):
            if self.outcome.first_progress_s is None:
                self.outcome.first_progress_s = time.monotonic() - self.outcome.started
            self.outcome.progress = event
            self.progressChanged.emit(100.0 * event.fraction)
        elif isinstance(event, RunWarning):
            self.outcome.warnings.append(event.message)
            QgsMessageLog.logMessage(event.message, LOG_TAG, Qgis.Warning)


@dataclass(frozen=True)
class PlanningCall:
    """One planning call: the engine's answer (None where there is none, and `error` says why) and its wall time."""

    plan: Optional[QuickPlan]
    error: str = ""
    wall_s: float = 0.0


class QuickPlanner(QObject):
    """The engine's fast planning call (`python -m infscene.quick_plan`, no torch, no model load) on a thread.

    `planned(generation, call)` arrives on the main thread with a PlanningCall; a caller drops every answer but the
    one to its latest request, so nothing shown is stale.
    """

    planned = pyqtSignal(int, object)

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def request(self, python: str, arguments: Sequence[str]) -> int:
        self.generation += 1
        generation = self.generation
        threading.Thread(target=self._plan, args=(generation, python, list(arguments)), daemon=True).start()
        return generation

    def drop_pending(self) -> None:
        """Answers still on their way are to an earlier request: their generation is no longer the latest."""
        self.generation += 1

    def _plan(self, generation: int, python: str, arguments: List[str]) -> None:
        self.planned.emit(generation, quick_plan(python, arguments))


def quick_plan(python: str, arguments: Sequence[str]) -> PlanningCall:
    """Run the planning call and return its QuickPlan event, or why there is none."""
    command = [python, "-m", "infscene.quick_plan", *arguments]
    started = time.monotonic()
    try:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, encoding="utf-8",
                                   errors="replace", timeout=PLAN_TIMEOUT_S, env=engine_environment(),
                                   creationflags=_NO_WINDOW)
    except OSError as exc:
        return PlanningCall(None, f"cannot start the engine {python}: {exc.strerror or exc}")
    except subprocess.TimeoutExpired:
        return PlanningCall(None, f"the engine's planning call did not answer within {PLAN_TIMEOUT_S:.0f} s")
    wall_s = round(time.monotonic() - started, 3)
    for line in reversed(completed.stdout.splitlines()):
        event = parse_event(line)
        if isinstance(event, QuickPlan):
            return PlanningCall(event, wall_s=wall_s)
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    return PlanningCall(None, lines[-1] if lines else f"the engine's planning call exited with status {completed.returncode}",
                        wall_s)
