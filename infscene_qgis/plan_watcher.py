"""The engine's planning call for a form that keeps changing: asked a moment after the last change, answered on a
thread, and only the answer to the form as it is now is passed on.

A drag of a slider or typing a number is one change, not twenty: the call runs PLAN_DELAY_MS after the last one. The
form supplies its arguments when the call is made (`arguments`, which raises InputError or EngineNotFound where the
form is not complete: that reason is the answer), so nothing here knows the form's widgets.
"""
from __future__ import annotations

from typing import Callable, List

from qgis.PyQt.QtCore import QObject, QTimer, pyqtSignal

from .engine_events import QuickPlan
from .engine_locator import EngineNotFound, find_engine_python
from .engine_task import PlanningCall, QuickPlanner, quick_plan
from .layer_input import InputError

PLAN_DELAY_MS = 250


class PlanWatcher(QObject):
    """`schedule()` on every change; `answered(QuickPlan)` with the engine's answer to the latest state (a failed
    call or an incomplete form is an answer with the reason as its problem or warning)."""

    answered = pyqtSignal(object)

    def __init__(self, arguments: Callable[[], List[str]], parent: QObject) -> None:
        super().__init__(parent)
        self._arguments = arguments
        self._planner = QuickPlanner()
        self._planner.planned.connect(self._planned)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PLAN_DELAY_MS)
        self._timer.timeout.connect(self.plan_now)

    def schedule(self) -> None:
        """Something changed: ask again once the changes stop (every earlier answer is now stale)."""
        self._timer.start()

    def plan_now(self) -> None:
        """Ask at once (the answer arrives on the main thread, in `answered`)."""
        self._timer.stop()
        try:
            python = find_engine_python()
            arguments = self._arguments()
        except (InputError, EngineNotFound) as exc:
            self.answered.emit(QuickPlan((str(exc),), (), {}))
            return
        self._planner.request(python, arguments)

    def answer_now(self) -> QuickPlan:
        """The answer for the form as it is now, waited for here (Run pressed before the answer came: a run is never
        started unchecked; the call takes about 0.2 s). It is also passed on in `answered`."""
        self._timer.stop()
        self._planner.drop_pending()
        try:
            plan = answer(quick_plan(find_engine_python(), self._arguments()))
        except (InputError, EngineNotFound) as exc:
            plan = QuickPlan((str(exc),), (), {})
        self.answered.emit(plan)
        return plan

    def _planned(self, generation: int, call: PlanningCall) -> None:
        if generation != self._planner.generation or self._timer.isActive():
            return  # an answer to an earlier state of the form
        self.answered.emit(answer(call))


def answer(call: PlanningCall) -> QuickPlan:
    """The call's QuickPlan, or one whose warning says why the call gave none."""
    return call.plan or QuickPlan((), (f"the engine's planning call failed: {call.error}",), {})
