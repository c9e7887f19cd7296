"""The plugin's run controller: runs a super-resolution request in the background, checks the engine, and adds what a
run wrote to the map.

The panel is a form: it builds an SrRequest and hands it here (plugin.py owns one controller for the panel). This
module owns the engine job, its progress in QGIS's status bar, the messages, the measured speed that later estimates
use, and the result layers. `prepare_engine` (the engine, and the output folder made) is shared with the
Processing algorithms, which run the same engine in Processing's own task.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import Qgis, QgsMessageLog, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QProgressBar

from . import settings
from .engine_events import QuickPlan, format_duration
from .engine_locator import EngineNotFound, find_engine_python
from .engine_request import SrRequest
from .engine_runner import EngineRunner
from .engine_task import LOG_TAG, EngineJob, RunOutcome
from .result_layers import LayerLoadError, add_group, pixel_size_units, result_name

_RATE_PREFIX = "infscene/seconds_per_mpx/"  # measured seconds per output megapixel and sample, per model and options


class RunRefused(Exception):
    """A run that cannot start (no engine, no output folder): one line for the user."""


def prepare_engine(output_path: str) -> EngineRunner:
    """The engine for a run, with the run's output folder made: the default outputs lie in a folder that may not
    exist yet (~/InfScene). Raises RunRefused."""
    try:
        runner = EngineRunner(find_engine_python())
    except EngineNotFound as exc:
        raise RunRefused(str(exc)) from exc
    folder = Path(output_path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunRefused(f"cannot create the output folder {folder}: {exc.strerror}") from exc
    return runner


@dataclass
class RunParameters:
    """What the panel asks to run: the request, the planning call's answer it was checked with (it names the
    result), and the input layer (whose stretch the result is drawn with)."""

    request: SrRequest
    plan: Optional[QuickPlan] = None
    input_layer_id: str = ""


class RunController(QObject):
    """One panel's runs and engine checks. Signals, on the main thread: `started()`, `progressed(percent, text)`,
    `status(text)` (a line for the panel), `finished(RunOutcome)`, `resultsAdded(layer id, folder)` and
    `engineChecked(text, default model folder)`."""

    started = pyqtSignal()
    progressed = pyqtSignal(int, str)
    status = pyqtSignal(str)
    finished = pyqtSignal(object)
    resultsAdded = pyqtSignal(str, str)
    engineChecked = pyqtSignal(str, str)
    _checkAnswered = pyqtSignal(object, object, object)  # from the check's thread: (exception, info, model folder)

    def __init__(self, iface: Any) -> None:
        super().__init__()
        self._checkAnswered.connect(self._engine_checked)
        self.iface = iface
        self.job: Optional[EngineJob] = None
        self.request: Optional[SrRequest] = None  # what self.job was asked to do
        self.input_layer_id = ""  # the run's input layer, whose stretch its result is drawn with
        self.plan_at_run: Optional[QuickPlan] = None  # the planning call's answer the run was started with
        self.files_before: Dict[str, Optional[int]] = {}
        self.engine_model_path = ""  # the default model's folder, as `infscene info` reported it
        self.checking = False  # an engine check is under way
        self._status_bar_widget: Optional[QProgressBar] = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    # ---- a run ---------------------------------------------------------------------------------
    def run(self, parameters: RunParameters) -> None:
        """Start the panel's request (its checks are the planning call's, already shown); one run at a time."""
        if self.job is not None:
            return
        request = parameters.request
        try:
            runner = prepare_engine(request.output_path)
        except RunRefused as exc:
            self.report_error(str(exc))
            return
        self.input_layer_id = parameters.input_layer_id
        self.plan_at_run = parameters.plan
        self.files_before = {path: _mtime(path) for path in expected_outputs(request)}
        self.status.emit("starting the engine ...")
        job = EngineJob(f"InfScene: super-resolve {Path(request.input_path).name}", runner, request.arguments())
        # Bound methods, not lambdas closing over the job: such a lambda is a cycle through PyQt's slot proxy that the
        # garbage collector may free while its event is still queued (a crash: live_layer.LiveLayers.add). The run
        # being shown is self.job and its request self.request.
        job.finished.connect(self._job_finished)
        job.progressChanged.connect(self._show_progress)
        self.job, self.request = job, request
        self._add_status_bar_widget()
        self.started.emit()
        job.start()

    def cancel(self) -> None:
        """Stop the running engine; it removes its temporary file, so no partial output remains."""
        if self.job is not None:
            self.status.emit("cancelling ...")
            self.job.cancel()

    def dispose(self) -> None:
        """Before the plugin unloads: stop a running engine and wait for it to clean up."""
        job = self.job
        self.cancel()
        if job is not None:
            job.wait(20.0)
        self._remove_status_bar_widget()

    def _show_progress(self, value: float) -> None:
        job = self.sender()
        if job is not self.job:
            return
        if self._status_bar_widget is not None:
            self._status_bar_widget.setValue(int(value))
        progress = job.outcome.progress
        text = ""
        if progress is not None and not job.is_cancelled():
            text = f"{progress.done} / {progress.total} work units, ETA {format_duration(progress.eta_s)}"
        self.progressed.emit(int(value), text)

    def _add_status_bar_widget(self) -> None:
        status_bar = getattr(self.iface, "statusBarIface", None)
        if status_bar is None:
            return
        bar = QProgressBar()
        bar.setRange(0, 100)
        bar.setFormat("InfScene %p%")
        bar.setMaximumWidth(160)
        bar.setToolTip("InfScene super-resolution (the InfScene panel shows details and Cancel)")
        status_bar().addPermanentWidget(bar, 0)
        self._status_bar_widget = bar

    def _remove_status_bar_widget(self) -> None:
        bar, self._status_bar_widget = self._status_bar_widget, None
        if bar is not None:
            self.iface.statusBarIface().removeWidget(bar)
            bar.deleteLater()

    def _job_finished(self, outcome: RunOutcome) -> None:
        if self.sender() is self.job and self.request is not None:
            self._completed(outcome, self.request)

    def _completed(self, outcome: RunOutcome, request: SrRequest) -> None:
        self.job, self.request = None, None
        self._remove_status_bar_widget()
        if outcome.first_progress_s is not None:
            QgsMessageLog.logMessage(f"first progress {outcome.first_progress_s:.2f} s after the engine started",
                                     LOG_TAG, Qgis.Info)
        written = [path for path in expected_outputs(request) if _mtime(path) not in (None, self.files_before.get(path))]
        if outcome.cancelled:
            self.status.emit("cancelled; no output was written")
            self.iface.messageBar().pushMessage("InfScene", "Run cancelled; no output was written", Qgis.Info, 5)
        elif outcome.error is not None:
            if written:
                self._add_results(request, written, failed_step=failed_step(request, written), error=outcome.error)
            else:
                self.report_error(outcome.error)
        else:
            self._record_rate(outcome, request)
            self._add_results(request, written)
        self.finished.emit(outcome)

    # ---- what a run wrote ----------------------------------------------------------------------
    def _add_results(self, request: SrRequest, written: List[str], failed_step: str = "",
                     error: Optional[str] = None) -> None:
        """Add what the run wrote, named `<layer> x4 e2diffsr 1.19 m`; after a failed step, what it wrote before."""
        input_layer = QgsProject.instance().mapLayer(self.input_layer_id)
        sr_path = request.output_path if request.output_path in written else None
        spread = request.spread_output() if request.spread_output() in written else None
        iceplant = request.iceplant_path if request.iceplant_path in written else None
        name = self.result_layer_name(request, input_layer)
        try:
            layers = add_group(f"InfScene {name}", sr_path, iceplant, input_layer, spread_path=spread,
                               samples=request.options.samples, sr_name=name)
        except LayerLoadError as exc:
            self.report_error(str(exc))
            return
        folder = str(Path(request.output_path).parent)
        files = ", ".join(Path(path).name for path in written)
        self.resultsAdded.emit(layers[-1].id() if layers else "", folder)
        if error is not None:
            self.report_error(f"the {failed_step} step failed: {error} (added what was written before it: {files})")
        else:
            self.progressed.emit(100, f"done: {request.output_path}")
            self.iface.messageBar().pushMessage("InfScene", f"Wrote {files} in {folder}", Qgis.Success, 5)

    def result_layer_name(self, request: SrRequest, input_layer: Any) -> str:
        """`<layer> x4 e2diffsr detail 0.7 1.19 m` from the request and the plan the run was started with."""
        plan = self.plan_at_run
        summary = plan.model if plan is not None else None
        base = input_layer.name() if isinstance(input_layer, QgsRasterLayer) else Path(request.input_path).stem
        scale = (plan.scale if plan is not None else None) or request.options.scale
        units = pixel_size_units(input_layer)[1] if isinstance(input_layer, QgsRasterLayer) else "px"
        detail = None
        if summary is not None and summary.family == "e2diffsr":
            detail = summary.default_detail if request.options.detail is None else request.options.detail
        return result_name(base, scale, summary.name if summary is not None else "",
                           plan.output_pixel_size if plan is not None else None, units, detail, request.options.seed)

    def report_error(self, message: str) -> None:
        """Errors go to the message bar, the log and the panel, never to an exception in QGIS."""
        self.status.emit(f"Error: {message}")
        self.iface.messageBar().pushMessage("InfScene", message, Qgis.Critical, 0)
        QgsMessageLog.logMessage(message, LOG_TAG, Qgis.Critical)

    # ---- measured speed ------------------------------------------------------------------------
    def seconds_per_mpx(self, options: Any, model_dir: Optional[str]) -> Optional[float]:
        """Seconds per output megapixel and sample of the last run of this model and options here (None: none yet)."""
        rate = settings.load_text(_RATE_PREFIX + self._rate_key(options, model_dir))
        return float(rate) if rate else None

    def _record_rate(self, outcome: RunOutcome, request: SrRequest) -> None:
        plan = outcome.plan
        if plan is None or outcome.elapsed_s is None or plan.output_width * plan.output_height == 0:
            return
        per_mpx = outcome.elapsed_s / (plan.output_width * plan.output_height / 1e6) / max(request.options.samples, 1)
        settings.save_value(_RATE_PREFIX + self._rate_key(request.options, request.model_dir), repr(per_mpx))

    def _rate_key(self, options: Any, model_dir: Optional[str]) -> str:
        model = model_dir or self.engine_model_path or "default"
        text = f"{model}|{options.device}|{options.detail}|{options.steps}|{options.patch}|{options.overlap}|{options.mode}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    # ---- the engine check ----------------------------------------------------------------------
    def check_engine(self, model_dir: Optional[str]) -> None:
        """Ask the engine for versions, device, GPU and model in the background; `engineChecked` says what it found."""
        try:
            runner = EngineRunner(find_engine_python())
        except EngineNotFound as exc:
            self.engineChecked.emit(str(exc), self.engine_model_path)
            return
        self.checking = True
        self.engineChecked.emit(f"checking {runner.python} ...", self.engine_model_path)
        # A thread, not a QgsTask: QGIS announced the check in its task list and "Task complete" messages.
        threading.Thread(target=self._check, args=(runner, model_dir), daemon=True).start()

    def _check(self, runner: EngineRunner, model_dir: Optional[str]) -> None:
        """Worker-thread body of the check: a plain subprocess call; the answer is queued to the main thread."""
        try:
            self._checkAnswered.emit(None, runner.info(model_dir), model_dir)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong is shown as the check's result
            self._checkAnswered.emit(exc, None, model_dir)

    def _engine_checked(self, exception: Optional[BaseException], info: Optional[Dict[str, Any]],
                        model_dir: Optional[str]) -> None:
        self.checking = False
        if exception is not None or info is None:
            self.engineChecked.emit(f"Engine check failed: {exception}", self.engine_model_path)
            return
        path = str((info.get("model") or {}).get("path") or "")
        if path and model_dir is None:
            self.engine_model_path = path  # the default model's folder: the planning call can check it too
        self.engineChecked.emit(describe_engine(info), self.engine_model_path)


def expected_outputs(request: SrRequest) -> List[str]:
    """The files a run writes, in the order the engine writes them."""
    return [path for path in (request.output_path, request.spread_output(), request.iceplant_path) if path]


def failed_step(request: SrRequest, written: List[str]) -> str:
    """The step that was running when a run failed, from the files it had written."""
    if request.output_path not in written:
        return "super-resolution"
    if request.iceplant_path and request.iceplant_path not in written:
        return "iceplant probability"
    return "last"


def _mtime(path: str) -> Optional[int]:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return None


def describe_engine(info: Dict[str, Any]) -> str:
    """One readable paragraph from `infscene info --json`: what runs, on which device, with which model."""
    gpu = info.get("gpu_name")
    count = int(info.get("gpu_count") or 1)
    gpus = f"{count} x GPU" if count > 1 else "GPU"
    gpu_text = f"{gpus} {gpu} ({float(info.get('gpu_memory_gb') or 0):.1f} GB)" if gpu else "no CUDA GPU"
    model = info.get("model") or {}
    if model.get("error"):
        model_text = f"model problem: {model['error']}"
    else:
        trained = "trained" if model.get("trained") else "NOT trained (results will be poor)"
        model_text = f"model '{model.get('name')}' ({model.get('family', 'sr3')}, {trained}) at {model.get('path')}"
    return (
        f"InfScene {info.get('version')}, torch {info.get('torch')}; auto device: {info.get('device_auto')}; "
        f"{gpu_text}; {model_text}"
    )
