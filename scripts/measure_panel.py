"""Measures, in the real QGIS desktop, the three figures issue 23 asks for in its closing note: the time from pressing
Run to the first progress the panel shows, the planning call's time, and the panel's height at its default options.

    /usr/bin/python3 scripts/measure_panel.py [INPUT] [--repeat N]

INPUT defaults to the bundled Planet sample; N (default 3) is how many times each time is taken. Run as a plain script,
it starts QGIS under Xvfb at 1366x768 on this same file (scripts/qgis_desktop.py) with a fresh profile, so the panel
has its default options. Inside QGIS the file adds INPUT, opens the panel, waits for the engine check, then:

- the panel's height: the natural height of its options (the scroll area's content) and of the fixed part below
  them (checks, estimate, progress, Run/Cancel, result tools, help link), and the height it has on this screen;
- the planning call: N calls of `python -m infscene.quick_plan` with the panel's own arguments, each the call's wall
  time (Python's start included: what the panel waits) and the engine's own work (`seconds`);
- Run to first progress: N times, Run is pressed, the time to the panel's first progress update is taken, and the
  run is cancelled (the engine removes what it wrote).

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
STEP_TIMEOUT_S = 300.0
QGIS_TIMEOUT_S = 900.0


def launch(root: Path, source: Path, repeat: int) -> int:
    """Outside QGIS: run QGIS on this file with a fresh profile (default options) and print the figures."""
    from qgis_desktop import run_in_qgis

    work = root / "build" / "measure-panel"
    shutil.rmtree(work, ignore_errors=True)
    status = run_in_qgis(root, work, Path(__file__), {INPUT_VARIABLE: str(source), REPEAT_VARIABLE: str(repeat)},
                         QGIS_TIMEOUT_S)
    print(json.dumps(status, indent=1))
    return 0 if status.get("status") == "done" else 1


def inside_qgis() -> None:
    """Inside the QGIS desktop: the height, N planning calls, N times Run to first progress."""
    sys.path.insert(0, os.environ["INFSCENE_SCRIPTS"])
    from qgis_desktop import Session

    from qgis.utils import iface

    from infscene_qgis.engine_locator import find_engine_python
    from infscene_qgis.engine_task import quick_plan

    source_path = Path(os.environ[INPUT_VARIABLE])
    repeat = int(os.environ[REPEAT_VARIABLE])
    figures: dict = {"input": str(source_path), "run_to_first_progress_s": []}
    state: dict = {}

    def start(plugin: object) -> None:
        dock = state["dock"] = plugin.dock
        source = iface.addRasterLayer(str(source_path), source_path.stem)
        iface.setActiveLayer(source)
        dock.show()
        dock.raise_()
        dock.output_widget.setFilePath(str(session.work / "out" / f"{source_path.stem}_sr.tif"))
        session.when(lambda: bool(dock._engine_model_path) and (dock._plan or {}).get("model") is not None,
                     measure_panel, "the engine check and the planning call", STEP_TIMEOUT_S)

    def measure_panel() -> None:
        dock = state["dock"]
        figures["options"] = repr(dock.options())
        figures["panel_height_px"] = {"options_natural": dock.scroll.widget().sizeHint().height(),
                                      "fixed_part_natural": dock.footer.sizeHint().height(),
                                      "on_this_screen": dock.height()}
        python, arguments = find_engine_python(), dock.plan_arguments()
        calls = [quick_plan(python, arguments) for _ in range(repeat)]
        wall = [call.get("wall_s") for call in calls]
        figures["planning_call"] = {"arguments": arguments, "wall_s": wall,
                                    "engine_s": [call.get("seconds") for call in calls],
                                    "wall_s_median": round(statistics.median(wall), 3)}
        press_run()

    def press_run() -> None:
        dock = state["dock"]
        dock.run()
        task = dock._task
        if task is None:
            session.fail(f"Run did not start: {dock.status_label.text()}")
            return
        pressed, seen = dock.run_started, []

        def progressed(_percent: float) -> None:
            if not seen:  # the panel's first progress update: measure, then stop the run
                seen.append(True)
                figures["run_to_first_progress_s"].append(round(time.monotonic() - pressed, 3))
                dock.cancel()

        def ended(outcome: object) -> None:
            if not seen:
                session.fail(f"the run ended before any progress: {outcome.error}")
            elif len(figures["run_to_first_progress_s"]) < repeat:
                session.when(lambda: dock._task is None, press_run, "the end of the cancelled run", STEP_TIMEOUT_S)
            else:
                times = figures["run_to_first_progress_s"]
                figures["run_to_first_progress_s_median"] = round(statistics.median(times), 3)
                session.done(**figures)

        task.progressChanged.connect(progressed)
        task.finished.connect(ended)

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
    sys.exit(launch(ROOT, ARGS.input.resolve(), ARGS.repeat))
