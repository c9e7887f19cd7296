"""A QgsTask that runs one engine command in the background for the dock.

run() executes on a worker thread and only talks to the EngineRunner and to itself
(setProgress is thread-safe); everything the main thread needs afterwards is collected in a
plain RunOutcome, because the task manager deletes the task object once it ends.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

from qgis.core import Qgis, QgsMessageLog, QgsTask

from .engine_events import Event, Plan, Progress, RunWarning
from .engine_runner import EngineCancelled, EngineError, EngineRunner

LOG_TAG = "InfScene"


@dataclass
class RunOutcome:
    """What a finished (or failed, or cancelled) run left behind, as plain Python data."""

    outputs: List[str] = field(default_factory=list)
    plan: Optional[Plan] = None
    progress: Optional[Progress] = None
    warnings: List[str] = field(default_factory=list)
    error: Optional[str] = None
    cancelled: bool = False

    @property
    def succeeded(self) -> bool:
        return self.error is None and not self.cancelled


class EngineTask(QgsTask):
    """Runs `python -m infscene <arguments>`; `on_finished(outcome)` is called on the main thread."""

    def __init__(
        self,
        description: str,
        runner: EngineRunner,
        arguments: Sequence[str],
        on_finished: Callable[[RunOutcome], None],
    ) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self.outcome = RunOutcome()
        self._runner = runner
        self._arguments = list(arguments)
        self._on_finished = on_finished

    def run(self) -> bool:
        QgsMessageLog.logMessage(
            "running: " + " ".join(self._runner.command(self._arguments)), LOG_TAG, Qgis.Info
        )
        try:
            self.outcome.outputs = self._runner.run(self._arguments, self._record, self.isCanceled)
        except EngineCancelled:
            self.outcome.cancelled = True
        except EngineError as exc:
            self.outcome.error = str(exc)
        return self.outcome.succeeded

    def _record(self, event: Event) -> None:
        if isinstance(event, Plan):
            self.outcome.plan = event
        elif isinstance(event, Progress):
            self.outcome.progress = event
            self.setProgress(100.0 * event.fraction)
        elif isinstance(event, RunWarning):
            self.outcome.warnings.append(event.message)
            QgsMessageLog.logMessage(event.message, LOG_TAG, Qgis.Warning)

    def finished(self, result: bool) -> None:  # noqa: ARG002 - the outcome carries the details
        self._on_finished(self.outcome)
