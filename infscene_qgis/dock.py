"""The InfScene panel: pick a layer and an extent, set options, run the engine in a background task.

UI glue only: requests are built with engine_request, run by EngineTask/EngineRunner and the
results added by result_layers; the engine validates the input and explains what is wrong.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsGeometry,
    QgsMapLayerProxyModel,
    QgsMessageLog,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsTask,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget, QgsExtentWidget, QgsFileWidget, QgsMapLayerComboBox, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QShowEvent
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import settings
from .engine_events import format_bytes, format_duration
from .engine_locator import EngineNotFound, configured_python, find_engine_python
from .engine_request import (
    DEVICE_LABELS,
    DEVICES,
    MODE_LABELS,
    MAX_SAMPLES,
    MAX_STEPS,
    MODES,
    SCALE_MAX,
    SCALE_MIN_EXCLUSIVE,
    OVERLAP_AUTO,
    PATCH_AUTO,
    STEPS_MODEL_DEFAULT,
    SrOptions,
    SrRequest,
    iceplant_path_for,
)
from .engine_runner import EngineRunner
from .engine_task import LOG_TAG, EngineTask, RunOutcome
from .icons import icon
from .layer_input import InputError, raster_file_path, rectangle_bounds
from .result_layers import LayerLoadError, add_group

# Above either, Run asks for confirmation after the engine's dry-run estimate.
LARGE_RUN_S = 600.0
LARGE_RUN_BYTES = 2 * 1024**3
# The Detail slider: 0 (faithful) to DETAIL_SLIDER_MAX (detailed), detail = value / DETAIL_SLIDER_MAX, in steps of 0.05.
DETAIL_SLIDER_MAX = 100
DETAIL_SLIDER_STEP = 5


class InfSceneDock(QgsDockWidget):
    """Dock panel; `runFinished(RunOutcome)` is emitted when a run (not an estimate) ends."""

    runFinished = pyqtSignal(object)

    def __init__(self, iface: Any, parent: Optional[QWidget] = None) -> None:
        super().__init__("InfScene super-resolution", parent)
        self.setObjectName("InfSceneDock")
        self.setWindowIcon(icon())
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self._task: Optional[EngineTask] = None
        self._input_layer_id = ""  # the run's input layer, whose stretch its result is drawn with
        self._check_task: Optional[QgsTask] = None
        self._checked_engine = False
        self._rubber_band = QgsRubberBand(self.canvas, QgsWkbTypes.PolygonGeometry)
        self._rubber_band.setStrokeColor(QColor(255, 80, 0))
        self._rubber_band.setFillColor(QColor(255, 80, 0, 40))
        self._rubber_band.setWidth(2)
        self.canvas.destinationCrsChanged.connect(self._show_rubber_band)
        self._build()
        self._load_settings()
        self._layer_changed(self.layer_combo.currentLayer())

    # ---- construction -------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        column = QVBoxLayout(body)
        column.addWidget(self._build_engine_box())
        column.addWidget(self._build_input_box())
        column.addWidget(self._build_options_box())
        column.addWidget(self._build_output_box())
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)

    def _build_engine_box(self) -> QGroupBox:
        box = QGroupBox("Engine")
        form = QFormLayout(box)
        self.engine_python = QgsFileWidget()
        self.engine_python.setStorageMode(QgsFileWidget.GetFile)
        self.engine_python.setToolTip(
            "Python interpreter of the environment where the InfScene engine (torch, rasterio) is installed. "
            "Empty: INFSCENE_PYTHON, then .venv beside the plugin's source checkout."
        )
        self.engine_python.fileChanged.connect(settings.save_engine_python)
        self.engine_python.fileChanged.connect(self._engine_choice_changed)
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.check_engine)
        row = QHBoxLayout()
        row.addWidget(self.engine_python, 1)
        row.addWidget(self.check_button)
        form.addRow("Engine Python", row)
        self.model_widget = QgsFileWidget()
        self.model_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.model_widget.setToolTip("Model folder; empty: the engine's default model")
        self.model_widget.fileChanged.connect(self._engine_choice_changed)
        form.addRow("Model folder", self.model_widget)
        self.engine_status = QLabel("Not checked yet.")
        self.engine_status.setWordWrap(True)
        self.engine_status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow(self.engine_status)
        return box

    def _build_input_box(self) -> QGroupBox:
        box = QGroupBox("Input")
        form = QFormLayout(box)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.layerChanged.connect(self._layer_changed)
        form.addRow("Raster layer", self.layer_combo)
        self.bands_edit = QLineEdit()
        self.bands_edit.setPlaceholderText("auto (from band descriptions)")
        self.bands_edit.setToolTip("1-based input bands in R,G,B[,NIR] order, e.g. 3,2,1,4 for Planet analytic BGRN")
        form.addRow("Bands R,G,B[,NIR]", self.bands_edit)
        self.extent_widget = QgsExtentWidget(None, QgsExtentWidget.CondensedStyle)
        self.extent_widget.setMapCanvas(self.canvas)
        self.extent_widget.extentChanged.connect(self._extent_changed)
        form.addRow(self.extent_widget)
        self.size_label = QLabel()
        form.addRow("Size", self.size_label)
        return box

    def _build_options_box(self) -> QGroupBox:
        box = QGroupBox("Super-resolution")
        form = QFormLayout(box)
        self.scale_spin = _double_spin(SCALE_MIN_EXCLUSIVE, SCALE_MAX, 2, 0.5)
        self.scale_spin.setToolTip("Output pixels per input pixel along each axis (4.8 m Planet x 8 = 0.6 m)")
        form.addRow("Scale factor", self.scale_spin)
        self.target_res_spin = _double_spin(0.0, 1e6, 4, 0.1)
        self.target_res_spin.setSpecialValueText("use scale factor")
        self.target_res_spin.setToolTip("Output pixel size in the layer's units; overrides the scale factor")
        form.addRow("Target pixel size", self.target_res_spin)
        self.steps_spin = _int_spin(STEPS_MODEL_DEFAULT, MAX_STEPS)
        self.steps_spin.setSpecialValueText("model default")
        self.steps_spin.setToolTip("Reverse diffusion steps; model default: SR3 50, e2diffsr 4 (its most)")
        form.addRow("Diffusion steps", self.steps_spin)
        self.patch_spin = _int_spin(PATCH_AUTO, 4096)
        self.patch_spin.setSpecialValueText("model's training size")
        form.addRow("Patch size (output px)", self.patch_spin)
        self.overlap_spin = _int_spin(OVERLAP_AUTO, 2048)
        self.overlap_spin.setSpecialValueText("a quarter of the patch")
        form.addRow("Overlap (output px)", self.overlap_spin)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODE_LABELS)
        form.addRow("Patch fusion", self.mode_combo)
        self.seed_spin = _int_spin(0, 2**31 - 1)
        form.addRow("Seed", self.seed_spin)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_LABELS)
        form.addRow("Device", self.device_combo)
        self.samples_spin = _int_spin(1, MAX_SAMPLES)
        self.samples_spin.setSpecialValueText("1 (no spread map)")
        self.samples_spin.setToolTip(
            "Run this many seeds: the result is the first, and a spread layer maps where the samples differ "
            "(where the model invents detail). Each sample costs a whole run."
        )
        form.addRow("Samples", self.samples_spin)
        form.addRow("Detail", self._build_detail_row())
        for spin in (self.scale_spin, self.target_res_spin):
            spin.valueChanged.connect(self._update_size)
        return box

    def _build_detail_row(self) -> QWidget:
        """faithful [slider 0..100] detailed, and under it 'model default' (checked: no --detail, the slider off)."""
        self.detail_slider = QSlider(Qt.Horizontal)
        self.detail_slider.setRange(0, DETAIL_SLIDER_MAX)
        self.detail_slider.setSingleStep(DETAIL_SLIDER_STEP)
        self.detail_slider.setPageStep(5 * DETAIL_SLIDER_STEP)
        self.detail_slider.setTickInterval(5 * DETAIL_SLIDER_STEP)
        self.detail_slider.setTickPosition(QSlider.TicksBelow)
        self.detail_slider.setValue(DETAIL_SLIDER_MAX)
        self.detail_slider.setToolTip(
            "e2diffsr models only (SR3 models refuse it). Left, faithful (0): the regression branch alone, the "
            "fastest and closest to the input, smooth. Right, detailed (1): the latent diffusion plus the texture "
            "head's full drawing, invented texture. Between: the drawn texture scaled (a model without a texture "
            "head offers only the two ends)."
        )
        self.detail_slider.valueChanged.connect(self._detail_slider_moved)
        faithful = QLabel("faithful")
        faithful.setToolTip("Detail 0: the regression branch alone (e2diffsr models): fastest, smooth, nothing invented")
        detailed = QLabel("detailed")
        detailed.setToolTip("Detail 1: the latent diffusion and the texture head's full drawing (e2diffsr models)")
        self.detail_value_label = QLabel()
        self.detail_value_label.setMinimumWidth(self.detail_value_label.fontMetrics().horizontalAdvance("0.00") + 4)
        self.detail_default_check = QCheckBox("model default")
        self.detail_default_check.setToolTip(
            "Send no detail: the model's own (its config.json default_detail, 1 unless set). "
            "Untick to choose with the slider; e2diffsr models only, SR3 models refuse a detail."
        )
        self.detail_default_check.toggled.connect(self._detail_default_toggled)
        field = QWidget()  # the slider's line, and the checkbox under it (a dock is narrow)
        column = QVBoxLayout(field)
        column.setContentsMargins(0, 0, 0, 0)
        line = QWidget()
        row = QHBoxLayout(line)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(faithful)
        row.addWidget(self.detail_slider, 1)
        row.addWidget(detailed)
        row.addWidget(self.detail_value_label)
        column.addWidget(line)
        column.addWidget(self.detail_default_check)
        self.detail_default_check.setChecked(True)
        self._detail_default_toggled(True)
        return field

    def _detail_slider_moved(self, value: int) -> None:
        """Keep the slider on its steps of 5 (a drag passes through every integer) and show the value sent."""
        snapped = round(value / DETAIL_SLIDER_STEP) * DETAIL_SLIDER_STEP
        if snapped != value:
            self.detail_slider.setValue(snapped)
            return
        self._show_detail()

    def _detail_default_toggled(self, checked: bool) -> None:
        self.detail_slider.setEnabled(not checked)
        self._show_detail()

    def _show_detail(self) -> None:
        default = self.detail_default_check.isChecked()
        self.detail_value_label.setText("" if default else f"{self.detail_slider.value() / DETAIL_SLIDER_MAX:.2f}")

    def detail(self) -> Optional[float]:
        """The detail the panel sends: None with 'model default' ticked, else the slider's 0..1."""
        if self.detail_default_check.isChecked():
            return None
        return self.detail_slider.value() / DETAIL_SLIDER_MAX

    def set_detail(self, detail: Optional[float]) -> None:
        if detail is not None:
            self.detail_slider.setValue(round(min(max(detail, 0.0), 1.0) * DETAIL_SLIDER_MAX))
        self.detail_default_check.setChecked(detail is None)
        self._detail_default_toggled(detail is None)

    def _build_output_box(self) -> QGroupBox:
        box = QGroupBox("Output and run")
        form = QFormLayout(box)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        form.addRow("Output file", self.output_widget)
        self.iceplant_check = QCheckBox("Also write iceplant probability (0-1)")
        form.addRow(self.iceplant_check)
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        form.addRow("Estimate", self.estimate_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        form.addRow(self.progress_bar)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        form.addRow(row)
        return box

    # ---- settings -----------------------------------------------------------------------
    def _load_settings(self) -> None:
        self.engine_python.setFilePath(configured_python())
        self.set_options(settings.load_options())
        self.iceplant_check.setChecked(settings.load_bool(settings.ICEPLANT_KEY))
        self.output_widget.setFilePath(settings.load_text(settings.OUTPUT_PATH_KEY))
        self.model_widget.setFilePath(settings.load_text(settings.MODEL_DIR_KEY))

    def save_settings(self) -> None:
        """Persist the panel's choices (on Run and when the panel closes)."""
        settings.save_options(self.options())
        settings.save_value(settings.ICEPLANT_KEY, self.iceplant_check.isChecked())
        settings.save_value(settings.OUTPUT_PATH_KEY, self.output_widget.filePath())
        settings.save_value(settings.MODEL_DIR_KEY, self.model_widget.filePath())

    def options(self) -> SrOptions:
        """The options as shown in the panel."""
        return SrOptions(
            scale=self.scale_spin.value(),
            target_res=self.target_res_spin.value(),
            steps=self.steps_spin.value(),
            patch=self.patch_spin.value(),
            overlap=self.overlap_spin.value(),
            mode=MODES[self.mode_combo.currentIndex()],
            seed=self.seed_spin.value(),
            device=DEVICES[self.device_combo.currentIndex()],
            bands=self.bands_edit.text().strip(),
            samples=self.samples_spin.value(),
            detail=self.detail(),
        )

    def set_options(self, options: SrOptions) -> None:
        self.scale_spin.setValue(options.scale)
        self.target_res_spin.setValue(options.target_res)
        self.steps_spin.setValue(options.steps)
        self.patch_spin.setValue(options.patch)
        self.overlap_spin.setValue(options.overlap)
        self.mode_combo.setCurrentIndex(MODES.index(options.mode) if options.mode in MODES else 0)
        self.seed_spin.setValue(options.seed)
        self.device_combo.setCurrentIndex(DEVICES.index(options.device) if options.device in DEVICES else 0)
        self.bands_edit.setText(options.bands)
        self.samples_spin.setValue(options.samples)
        self.set_detail(options.detail)

    # ---- layer and extent ---------------------------------------------------------------
    def layer(self) -> Optional[QgsRasterLayer]:
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def _layer_changed(self, layer: Optional[QgsRasterLayer]) -> None:
        """New layer: extent defaults to the whole layer, in its CRS; suggest a fresh output name."""
        if not isinstance(layer, QgsRasterLayer):
            self._update_size()
            return
        self.extent_widget.setOriginalExtent(layer.extent(), layer.crs())
        self.extent_widget.setOutputCrs(layer.crs())
        self.extent_widget.setOutputExtentFromOriginal()
        current = self.output_widget.filePath()
        folder = Path(current).parent if current else settings.default_output_folder()
        self.output_widget.setFilePath(str(settings.free_output_path(folder, output_stem(layer))))
        self._update_size()

    def set_extent(self, extent: QgsRectangle) -> None:
        """Use `extent` (in the layer's CRS) as the area to super-resolve."""
        self.extent_widget.setOutputExtentFromUser(extent, self.extent_widget.outputCrs())

    def extent(self) -> QgsRectangle:
        """The chosen area in the layer's CRS."""
        return self.extent_widget.outputExtent()

    def _extent_changed(self, _extent: QgsRectangle) -> None:
        self._update_size()
        self._show_rubber_band()

    def _show_rubber_band(self) -> None:
        """Outline the chosen extent on the canvas (redrawn when the canvas CRS changes)."""
        layer = self.layer()
        self._rubber_band.reset(QgsWkbTypes.PolygonGeometry)
        if layer is not None and not self.extent().isEmpty():
            self._rubber_band.setToGeometry(QgsGeometry.fromRect(self.extent()), layer.crs())

    def dispose(self) -> None:
        """Before the plugin unloads: stop a running engine and take the outline off the canvas."""
        self.cancel()
        self.canvas.scene().removeItem(self._rubber_band)

    def _update_size(self) -> None:
        """Input and output size in pixels of the chosen extent, so a user sees the cost before running."""
        layer = self.layer()
        extent = self.extent()
        if layer is None or extent.isEmpty() or layer.rasterUnitsPerPixelX() <= 0:
            self.size_label.setText("choose a raster layer and a non-empty extent")
            return
        in_w = round(extent.width() / layer.rasterUnitsPerPixelX())
        in_h = round(extent.height() / layer.rasterUnitsPerPixelY())
        target = self.target_res_spin.value()
        if target > 0:
            out_w, out_h = round(extent.width() / target), round(extent.height() / target)
        else:
            out_w, out_h = round(in_w * self.scale_spin.value()), round(in_h * self.scale_spin.value())
        self.size_label.setText(f"{in_w} x {in_h} input px -> {out_w} x {out_h} output px")

    # ---- engine check -------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Outline the extent again, and check the engine the first time the panel is shown so the
        device is known up front."""
        super().showEvent(event)
        self._show_rubber_band()
        if not self._checked_engine:
            self._checked_engine = True
            self.check_engine()

    def _engine_choice_changed(self, _path: str) -> None:
        """A different interpreter or model invalidates the shown status: re-check if it is on screen."""
        if self.isVisible():
            self.check_engine()
        else:
            self._checked_engine = False

    def check_engine(self) -> None:
        """Ask the engine for versions, device, GPU and model in the background and show them."""
        try:
            runner = EngineRunner(find_engine_python())
        except EngineNotFound as exc:
            self.engine_status.setText(str(exc))
            return
        self.engine_status.setText(f"checking {runner.python} ...")
        self.check_button.setEnabled(False)
        model_dir = self.model_widget.filePath().strip() or None
        task = QgsTask.fromFunction(
            "InfScene: check engine", _engine_info, runner, model_dir, on_finished=self._engine_checked
        )
        self._check_task = task
        QgsApplication.taskManager().addTask(task)

    def _engine_checked(self, exception: Optional[BaseException], info: Optional[Dict[str, Any]] = None) -> None:
        self.check_button.setEnabled(True)
        self._check_task = None
        if exception is not None or info is None:
            self.engine_status.setText(f"Engine check failed: {exception}")
            return
        self.engine_status.setText(describe_engine(info))

    # ---- running ------------------------------------------------------------------------
    def build_request(self, dry_run: bool) -> SrRequest:
        """The request for the current panel state; raises InputError or EngineNotFound."""
        layer = self.layer()
        if layer is None:
            raise InputError("choose a raster layer first")
        output = self.output_widget.filePath().strip()
        if not output:
            raise InputError("choose an output file")
        if not output.lower().endswith((".tif", ".tiff")):
            output += ".tif"
        return SrRequest(
            input_path=raster_file_path(layer),
            output_path=output,
            options=self.options(),
            bounds=rectangle_bounds(self.extent()),
            iceplant_path=iceplant_path_for(output) if self.iceplant_check.isChecked() else None,
            model_dir=self.model_widget.filePath().strip() or None,
            dry_run=dry_run,
        )

    def run(self) -> None:
        """Estimate first (engine dry run), confirm if large, then run for real."""
        if self._task is not None:
            return
        try:
            runner = EngineRunner(find_engine_python())
            request = self.build_request(dry_run=True)
        except (InputError, EngineNotFound) as exc:
            self._report_error(str(exc))
            return
        self.save_settings()
        self._input_layer_id = self.layer().id() if self.layer() is not None else ""
        try:
            Path(request.output_path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._report_error(f"cannot create the output folder {Path(request.output_path).parent}: {exc.strerror}")
            return
        self.status_label.setText("estimating ...")
        self._start(EngineTask("InfScene: estimate", runner, request.arguments(),
                               lambda outcome: self._estimated(outcome, runner, request)))

    def _estimated(self, outcome: RunOutcome, runner: EngineRunner, request: SrRequest) -> None:
        self._task = None
        if outcome.cancelled:
            self._completed(outcome, request)
            return
        if not outcome.succeeded or outcome.plan is None:
            self._finish_ui()
            self._report_error(outcome.error or "the engine returned no estimate")
            return
        plan = outcome.plan
        summary = (
            f"{plan.output_width} x {plan.output_height} px, {plan.total} work units, "
            f"{format_bytes(plan.output_bytes)} on disk, about {format_duration(plan.estimated_s)}"
        )
        self.estimate_label.setText(summary)
        if (plan.estimated_s or 0) > LARGE_RUN_S or plan.output_bytes > LARGE_RUN_BYTES:
            answer = QMessageBox.question(self, "InfScene: large run", f"This run will produce {summary}. Continue?")
            if answer != QMessageBox.Yes:
                self._finish_ui()
                self.status_label.setText("not started")
                return
        request.dry_run = False
        self.status_label.setText("running ...")
        self._start(EngineTask(f"InfScene: super-resolve {Path(request.input_path).name}", runner,
                               request.arguments(), lambda result: self._completed(result, request)))

    def _start(self, task: EngineTask) -> None:
        self._task = task
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setValue(0)
        task.progressChanged.connect(lambda value: self._show_progress(task, value))
        QgsApplication.taskManager().addTask(task)

    def _show_progress(self, task: EngineTask, value: float) -> None:
        self.progress_bar.setValue(int(value))
        progress = task.outcome.progress
        if progress is not None:
            self.status_label.setText(
                f"{progress.done} / {progress.total} work units, ETA {format_duration(progress.eta_s)}"
            )

    def cancel(self) -> None:
        """Stop the running engine; it removes its temporary file, so no partial output remains."""
        if self._task is not None:
            self.status_label.setText("cancelling ...")
            self._task.cancel()

    def _completed(self, outcome: RunOutcome, request: SrRequest) -> None:
        self._task = None
        self._finish_ui()
        if outcome.cancelled:
            self.status_label.setText("cancelled; no output was written")
        elif outcome.error is not None:
            self._report_error(outcome.error)
        else:
            self._add_results(request)
        self.runFinished.emit(outcome)

    def _add_results(self, request: SrRequest) -> None:
        try:
            input_layer = QgsProject.instance().mapLayer(self._input_layer_id)
            add_group(f"InfScene {Path(request.output_path).stem}", request.output_path, request.iceplant_path, input_layer,
                      spread_path=request.spread_output(), samples=request.options.samples)
        except LayerLoadError as exc:
            self._report_error(str(exc))
            return
        self.progress_bar.setValue(100)
        self.status_label.setText(f"done: {request.output_path}")
        self.iface.messageBar().pushMessage("InfScene", f"Wrote {request.output_path}", Qgis.Success, 5)
        layer = self.layer()
        if layer is not None:
            folder = Path(request.output_path).parent
            self.output_widget.setFilePath(str(settings.free_output_path(folder, output_stem(layer))))

    def _finish_ui(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _report_error(self, message: str) -> None:
        """Errors go to the message bar, the log and the panel, never to an exception in QGIS."""
        self.status_label.setText(f"Error: {message}")
        self.iface.messageBar().pushMessage("InfScene", message, Qgis.Critical, 0)
        QgsMessageLog.logMessage(message, LOG_TAG, Qgis.Critical)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.save_settings()
        self._rubber_band.reset(QgsWkbTypes.PolygonGeometry)
        super().closeEvent(event)


def output_stem(layer: QgsRasterLayer) -> str:
    """`<layer name>_sr` with anything but letters, digits, '-' and '_' replaced, for a safe file name."""
    safe = re.sub(r"[^\w-]+", "_", layer.name()).strip("_") or "layer"
    return f"{safe}_sr"


def _engine_info(_task: QgsTask, runner: EngineRunner, model_dir: Optional[str]) -> Dict[str, Any]:
    """Worker-thread body of the check: a plain subprocess call, no QObject touched."""
    return runner.info(model_dir)


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


def _int_spin(minimum: int, maximum: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    return spin


def _double_spin(minimum: float, maximum: float, decimals: int, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(minimum, maximum)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    return spin
