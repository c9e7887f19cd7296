"""Measures, in the real QGIS desktop, the three figures issue 23 asks for in its closing note: the time from pressing
Run to the first progress the panel shows, the planning call's time, and the panel's height at its default options.

    /usr/bin/python3 scripts/measure_panel.py [INPUT] [--repeat N]

INPUT defaults to the bundled Planet sample; N (default 3) is how many times each time is taken. Run as a plain script,
it starts QGIS under Xvfb at 1366x768 on this same file (scripts/qgis_desktop.py) with a fresh profile, so the panel
has its default options. Inside QGIS the file adds INPUT, opens the panel, waits for the engine check and the planning
call that knows the engine's model (the panel's `planned` signal), then:

- the panel's height: the natural height of its options (the scroll area's content) and of the fixed part below
  them (checks, estimate, progress, Run/Cancel, result tools, help link), the same at the dock's width on this screen
  (wrapped labels grow as the dock narrows), the height it has on this screen, and the widths they were taken at;
- the planning call: N calls of `python -m infscene.quick_plan` with the panel's own arguments, each the call's wall
  time (Python's start included: what the panel waits) and the engine's own work (`seconds`);
- Run to first progress: N times, Run is pressed, the time to the first progress the run controller reports to the
  panel (`dock.runs.progressed`) is taken, and the run is cancelled (the engine removes what it wrote); the next Run
  waits for the end of the run and the panel's new planning call. The engine's own share (its start to its first
  progress event) comes with it.

Each wait has a deadline: a check, plan, progress or end that never comes fails with what was awaited, and an exception
in the script ends it with its traceback (status "failed"), instead of leaving QGIS open until the outer timeout.

It prints the figures as JSON (and leaves them in build/measure-panel/status.json). Times depend on the machine and
its load: take them on an idle machine, and say which.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

INPUT_VARIABLE = "INFSCENE_MEASURE_INPUT"
REPEAT_VARIABLE = "INFSCENE_MEASURE_REPEAT"
CHECK_TIMEOUT_S = 240.0  # `infscene info` imports torch and reads the model; then the planning call
PLAN_TIMEOUT_S = 60.0  # the planning call after a run (no torch)
FIRST_PROGRESS_TIMEOUT_S = 300.0  # Run to the first progress: the engine starts, loads the model, plans
END_TIMEOUT_S = 60.0  # a cancel: SIGTERM at once, SIGKILL 15 s later (engine_runner)
QGIS_START_S = 180.0  # QGIS's start and quit, the plugin's load, the planning calls measured


def launch(root: Path, source: Path, repeat: int) -> int:
    """Outside QGIS: run QGIS on this file with a fresh profile (default options) and print the figures."""
    from qgis_desktop import run_in_qgis

    work = root / "build" / "measure-panel"
    shutil.rmtree(work, ignore_errors=True)
    # Only a backstop: every wait inside QGIS has its own deadline, well within this.
    timeout_s = QGIS_START_S + CHECK_TIMEOUT_S + repeat * (FIRST_PROGRESS_TIMEOUT_S + END_TIMEOUT_S + PLAN_TIMEOUT_S)
    status = run_in_qgis(root, work, Path(__file__), {INPUT_VARIABLE: str(source), REPEAT_VARIABLE: str(repeat)},
                         timeout_s)
    print(json.dumps(status, indent=1))
    return 0 if status.get("status") == "done" else 1


def inside_qgis() -> None:
    """Inside the QGIS desktop: the height, N planning calls, N times Run to first progress.

    It drives the panel as a user does (its fields, Run, Cancel) and watches the public signals: the panel's
    `planned(plan)`, and its run controller's (`dock.runs`) `engineChecked`, `progressed` and `finished`.
    Every wait has a deadline, so a signal that never comes fails the session with what was awaited."""
    sys.path.insert(0, os.environ["INFSCENE_SCRIPTS"])
    from qgis_desktop import Session

    from qgis.utils import iface

    from infscene_qgis.engine_locator import find_engine_python
    from infscene_qgis.engine_task import quick_plan

    source_path = Path(os.environ[INPUT_VARIABLE])
    repeat = int(os.environ[REPEAT_VARIABLE])
    figures: dict = {"input": str(source_path), "run_to_first_progress_s": [],
                     "engine_start_to_first_progress_s": [], "run_ends": []}
    # phase: what the next signal is awaited for ("check" until the first plan with the engine's model, "plan" for
    # the plan after a run before the next Run, "run" while a run is on); `met` ends the wait's deadline.
    state: dict = {"phase": "check", "plan": None, "met": lambda: None}

    def wait(phase: str, what: str, timeout_s: float) -> None:
        state["phase"] = phase
        state["met"] = session.deadline(what, timeout_s)

    def start(plugin: object) -> None:
        dock = state["dock"] = plugin.dock
        runs = dock.runs
        dock.planned.connect(session.guard(planned))
        runs.engineChecked.connect(session.guard(engine_checked))
        runs.progressed.connect(session.guard(progressed))
        runs.finished.connect(session.guard(ended))
        wait("check", "the engine check and the planning call with the engine's model", CHECK_TIMEOUT_S)
        source = iface.addRasterLayer(str(source_path), source_path.stem)
        if source is None or not source.isValid():
            session.fail(f"QGIS cannot open {source_path}")
            return
        iface.setActiveLayer(source)  # the panel follows the active layer
        dock.show()  # the first show checks the engine
        dock.raise_()
        dock.output_widget.setFilePath(str(session.work / "out" / f"{source_path.stem}_sr.tif"))

    def engine_checked(text: str, _default_model: str) -> None:
        state["engine"] = text
        # describe_engine's text starts "InfScene <version>"; "checking ..." is the check starting; anything else is
        # why there is no engine (not found, or the check failed).
        if not text.startswith(("InfScene ", "checking ")) or "; model problem: " in text:
            session.fail(f"the engine check failed: {text}")

    def planned(plan: object) -> None:
        """The panel's planning call answered for its current state."""
        state["plan"] = plan
        dock = state["dock"]
        if state["phase"] == "check" and dock.runs.engine_model_path and plan.model is not None:
            state["met"]()
            measure_panel()
        elif state["phase"] == "plan":
            state["met"]()
            press_run()

    def measure_panel() -> None:
        dock = state["dock"]
        state["phase"] = "measure"
        figures["engine"] = state.get("engine", "")
        figures["options"] = repr(dock.options())
        body, footer, viewport = dock.scroll.widget(), dock.footer, dock.scroll.viewport()
        figures["panel_height_px"] = {"options_natural": body.sizeHint().height(),
                                      "fixed_part_natural": footer.sizeHint().height(),
                                      "on_this_screen": dock.height()}
        # Wrapped labels are as tall as the width makes them: the heights at the dock's width on this screen.
        figures["panel_width_px"] = {"dock": dock.width(), "options_viewport": viewport.width()}
        if body.hasHeightForWidth():
            figures["panel_height_px"]["options_at_this_width"] = body.heightForWidth(viewport.width())
        if footer.hasHeightForWidth():
            figures["panel_height_px"]["fixed_part_at_this_width"] = footer.heightForWidth(footer.width())
        python, arguments = find_engine_python(), dock.plan_arguments()
        calls = [quick_plan(python, arguments) for _ in range(repeat)]
        errors = [call.error for call in calls if call.plan is None]
        if errors:
            session.fail(f"the planning call failed: {errors[0]}", arguments=arguments)
            return
        wall = [call.wall_s for call in calls]
        figures["planning_call"] = {"arguments": arguments, "wall_s": wall,
                                    "engine_s": [call.plan.seconds for call in calls if call.plan is not None],
                                    "wall_s_median": round(statistics.median(wall), 3)}
        press_run()

    def press_run() -> None:
        dock = state["dock"]
        problems = state["plan"].problems if state["plan"] is not None else ()
        if problems:
            session.fail(f"the panel's checks refuse the run: {problems}")
            return
        state["seen"] = False
        wait("run", "the first progress after Run", FIRST_PROGRESS_TIMEOUT_S)
        state["pressed"] = time.monotonic()
        dock.run()  # emits runRequested; the controller starts the engine at once or says why not
        if not dock.runs.busy:
            session.fail(f"Run did not start: {dock.status_label.text()}")

    def progressed(_percent: int, _text: str) -> None:
        if state["phase"] == "run" and not state["seen"]:  # the first progress: measure, then stop the run
            state["seen"] = True
            state["met"]()
            figures["run_to_first_progress_s"].append(round(time.monotonic() - state["pressed"], 3))
            wait("ending", "the end of the cancelled run", END_TIMEOUT_S)
            state["dock"].cancel()

    def ended(outcome: object) -> None:
        if state["phase"] == "run":
            session.fail(f"the run ended before any progress: {outcome.error or 'no error'}"
                         f"{' (cancelled)' if outcome.cancelled else ''}")
            return
        if state["phase"] != "ending":
            return
        state["met"]()
        if outcome.first_progress_s is not None:
            figures["engine_start_to_first_progress_s"].append(round(outcome.first_progress_s, 3))
        figures["run_ends"].append("cancelled" if outcome.cancelled else
                                   "finished" if outcome.succeeded else f"error: {outcome.error}")
        if outcome.error is not None and not outcome.cancelled:
            session.fail(f"the run failed after its first progress: {outcome.error}", **figures)
        elif len(figures["run_to_first_progress_s"]) < repeat:
            # The panel asks the planning call again after a run; Run again once it has answered, as a user would.
            wait("plan", "the planning call after the cancelled run", PLAN_TIMEOUT_S)
        else:
            state["phase"] = "done"
            times = figures["run_to_first_progress_s"]
            figures["run_to_first_progress_s_median"] = round(statistics.median(times), 3)
            session.done(**figures)

    session = Session(start)
    session.begin()


if os.environ.get(INPUT_VARIABLE) and "qgis" in sys.modules:
    inside_qgis()
elif __name__ == "__main__":
    ROOT = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(ROOT / "scripts"))
    PARSER = argparse.ArgumentParser(description="Run to first progress, the planning call and the panel's height.")
    PARSER.add_argument("input", nargs="?", type=Path,
                        default=ROOT / "resources" / "sample" / "planet_sn7_brentwood_80px.tif")
    PARSER.add_argument("--repeat", type=int, default=3, help="how many times each time is taken")
    ARGS = PARSER.parse_args()
    if ARGS.repeat < 1:
        PARSER.error("--repeat must be at least 1")
    sys.exit(launch(ROOT, ARGS.input.resolve(), ARGS.repeat))
