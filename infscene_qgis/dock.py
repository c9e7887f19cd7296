"""The InfScene panel: pick a layer and an extent, set options, run the engine in a background task.

A form: its option widgets are built from the option table (option_widgets, sr_options), its request with
engine_request; Run hands the request to the plugin's run controller (run_controller), which runs the engine, checks
it and adds the results. The engine validates the input and explains what is wrong.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, List, Optional, Tuple

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsRectangle
from qgis.gui import QgsDockWidget, QgsExtentWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QUrl, pyqtSignal
from qgis.PyQt.QtGui import QHideEvent, QShowEvent
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from . import settings
from .detail_control import DETAIL, DetailControl, detail_note
from .engine_events import ModelSummary, QuickPlan, format_bytes, format_duration
from .engine_box import EngineBox
from .engine_request import SrOptions, SrRequest, iceplant_path_for
from .engine_task import RunOutcome
from .extent_outline import ExtentOutline
from .icons import icon, live_icon
from .layer_input import InputError, raster_file_path, rectangle_bounds
from .option_widgets import option_widget
from .plan_watcher import PlanWatcher
from .result_layers import RESULT_PROPERTY, pixel_size_units
from .result_tools import ResultTools
from .text_label import TextLabel
from .run_controller import RunController, RunParameters
from .sr_options import DOCK, options_in

# Above either, Run asks for confirmation after the engine's dry-run estimate.
LARGE_RUN_S = 600.0
LARGE_RUN_BYTES = 2 * 1024**3
DOCS_URL = "https://github.com/infscene/infscene/blob/main/docs/plugin.md"
LOCAL_DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugin.md"


class InfSceneDock(QgsDockWidget):
    """Dock panel: a form. `runRequested(RunParameters)` is emitted when Run is pressed and the run is checked and
    confirmed; `runs`, the plugin's RunController (the panel makes its own when given none), carries it out and
    reports back. `planned(QuickPlan)` is emitted when the engine's planning call has answered for the panel's current
    state; `liveLayerRequested(layer)` when Live layer is pressed (the plugin owns the live layers: they outlive the
    panel's runs)."""

    runRequested = pyqtSignal(object)
    planned = pyqtSignal(object)
    liveLayerRequested = pyqtSignal(object)

    def __init__(self, iface: Any, parent: Optional[QWidget] = None, runs: Optional[RunController] = None) -> None:
        super().__init__("InfScene super-resolution", parent)
        self.setObjectName("InfSceneDock")
        self.setWindowIcon(icon())
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.runs = runs if runs is not None else RunController(iface)
        self._plan: Optional[QuickPlan] = None  # the planning call's answer for the panel as it is now
        self._iceplant_wanted = False  # the user's tick, kept while the layer cannot have the probability
        self.plan_watcher = PlanWatcher(self.plan_arguments, self)
        self.plan_watcher.answered.connect(self._show_plan)
        self.outline = ExtentOutline(self.canvas)
        self.engine_box = EngineBox(self.runs)
        self.engine_box.changed.connect(self.schedule_plan)
        self.canvas.destinationCrsChanged.connect(self._show_outline)
        self._build()
        self.runRequested.connect(self.runs.run)
        self.runs.started.connect(self._run_started)
        self.runs.progressed.connect(self._show_progress)
        self.runs.status.connect(self.status_label.setText)
        self.runs.finished.connect(self._run_finished)
        self.runs.resultsAdded.connect(self._results_added)
        self._load_settings()
        self._layer_changed(self.layer_combo.currentLayer())
        if hasattr(iface, "currentLayerChanged"):
            iface.currentLayerChanged.connect(self.follow_active_layer)

    # ---- construction -------------------------------------------------------------------
    def _build(self) -> None:
        """The options scroll; the checks, progress, Run/Cancel and the result tools stay below them, always in view."""
        # One widget per option the table gives the panel (the detail has a slider of its own, below).
        self.fields = {option.name: option_widget(option) for option in options_in(DOCK) if option is not DETAIL}
        for widget in self.fields.values():
            widget.changed.connect(self.schedule_plan)
        body = QWidget()
        column = QVBoxLayout(body)
        column.addWidget(self.engine_box)
        column.addWidget(self._build_input_box())
        column.addWidget(self._build_options_box())
        column.addWidget(self._build_output_box())
        column.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(body)
        self.scroll.setMinimumHeight(120)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll, 1)
        self.footer = self._build_footer()
        layout.addWidget(self.footer, 0)
        self.setWidget(panel)

    def _build_input_box(self) -> QGroupBox:
        box = QGroupBox("Input")
        form = _form(box)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setToolTip("The raster to super-resolve; follows the layer selected in the Layers panel")
        self.layer_combo.layerChanged.connect(self._layer_changed)
        form.addRow("Raster layer", self.layer_combo)
        bands = self.fields["bands"]
        form.addRow(bands.option.label, bands)
        self.extent_widget = QgsExtentWidget(None, QgsExtentWidget.CondensedStyle)
        self.extent_widget.setMapCanvas(self.canvas)
        self.extent_widget.setToolTip("The area to super-resolve: the button offers the layer's, the canvas's or "
                                      "another layer's extent, or drawing it on the canvas")
        self.extent_widget.extentChanged.connect(self._extent_changed)
        form.addRow("Extent", self.extent_widget)
        self.extent_label = TextLabel()  # the extent's corners, wrapped and whole (the widget's line cuts them)
        form.addRow("", self.extent_label)
        self.size_label = TextLabel(tooltip="Input and output pixels of the extent, as the engine will make them")
        form.addRow("Size", self.size_label)
        return box

    def _build_options_box(self) -> QGroupBox:
        box = QGroupBox("Super-resolution")
        form = _form(box)
        for name, widget in self.fields.items():
            if name != "bands":  # in the Input box
                form.addRow(widget.option.label, widget)
        self.detail_control = DetailControl()
        form.addRow(DETAIL.label, self.detail_control)
        self.detail_note = TextLabel(tooltip="What the model adds to the input at this detail")
        form.addRow("", self.detail_note)
        self.detail_control.changed.connect(self._detail_changed)
        return box

    def _detail_changed(self) -> None:
        self._show_detail_note()
        self.schedule_plan()

    def _show_detail_note(self) -> None:
        self.detail_note.setText(detail_note(self._model_info(), self.detail()))

    def detail(self) -> Optional[float]:
        """The detail the panel sends: None with 'model default' ticked, else the slider's 0..1."""
        return self.detail_control.detail()

    def _build_output_box(self) -> QGroupBox:
        box = QGroupBox("Output")
        form = _form(box)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output_widget.setToolTip("GeoTIFF to write; an existing file is never overwritten by a suggestion")
        self.output_widget.fileChanged.connect(self.schedule_plan)
        form.addRow("Output file", self.output_widget)
        self.iceplant_check = QCheckBox("Iceplant probability too")
        self._iceplant_tooltip = "Also write <output>_iceplant.tif: the probability of iceplant cover (0-1) of the result"
        self.iceplant_check.setToolTip(self._iceplant_tooltip)
        self.iceplant_check.toggled.connect(self._iceplant_toggled)
        form.addRow(self.iceplant_check)
        return box

    def _build_footer(self) -> QWidget:
        """Checks, estimate, progress, Run/Cancel, the result's tools and the help link: outside the scroll area."""
        footer = QWidget()
        form = _form(footer)
        form.setContentsMargins(9, 0, 9, 6)
        self.checks_label = TextLabel()
        form.addRow("Checks", self.checks_label)
        self.estimate_label = TextLabel()
        form.addRow("Estimate", self.estimate_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        form.addRow(self.progress_bar)
        self.status_label = TextLabel()
        form.addRow(self.status_label)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop the engine; it removes what it was writing, so no partial file remains")
        self.cancel_button.clicked.connect(self.cancel)
        self.live_button = QPushButton("Live layer")
        self.live_button.setIcon(live_icon())
        self.live_button.setToolTip("Add a live super-resolved layer of this raster above it: the engine super-resolves "
                                    "the tiles the map shows as you pan and zoom (this panel's scale or pixel size, "
                                    "seed, detail and model)")
        self.live_button.clicked.connect(lambda: self.liveLayerRequested.emit(self.layer()))
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.live_button)
        form.addRow(row)
        self.result_tools = ResultTools(self.canvas)
        self.result_tools.message.connect(self.status_label.setText)
        form.addRow("Result", self.result_tools)
        docs = QUrl.fromLocalFile(str(LOCAL_DOCS)).toString() if LOCAL_DOCS.is_file() else DOCS_URL
        self.help_label = QLabel(f'<a href="{docs}">Help (docs/plugin.md)</a>')
        self.help_label.setToolTip("The InfScene panel's guide")
        self.help_label.setOpenExternalLinks(True)
        form.addRow(self.help_label)
        return footer

    # ---- settings -----------------------------------------------------------------------
    def _load_settings(self) -> None:
        self.set_options(settings.load_options())
        self.iceplant_check.setChecked(settings.load_bool(settings.ICEPLANT_KEY))
        self.output_widget.setFilePath(settings.load_text(settings.OUTPUT_PATH_KEY))

    def save_settings(self) -> None:
        """Persist the panel's choices (on Run and when the panel closes)."""
        settings.save_options(self.options())
        settings.save_value(settings.ICEPLANT_KEY, self.iceplant_check.isChecked())
        settings.save_value(settings.OUTPUT_PATH_KEY, self.output_widget.filePath())
        self.engine_box.save_settings()

    def options(self) -> SrOptions:
        """The options as shown in the panel (those it has no widget for at their defaults)."""
        values = {name: widget.option_value() for name, widget in self.fields.items()}
        return SrOptions(**values, detail=self.detail())

    def set_options(self, options: SrOptions) -> None:
        for name, widget in self.fields.items():
            widget.set_option_value(getattr(options, name))
        self.detail_control.set_detail(options.detail)
        self.schedule_plan()

    # ---- layer and extent ---------------------------------------------------------------
    def layer(self) -> Optional[QgsRasterLayer]:
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def follow_active_layer(self, layer: Any) -> None:
        """The layer selected in the Layers panel becomes the input (not while the panel is hidden, not during a run,
        and not a result of ours)."""
        if not self.isVisible() or self.runs.busy or not isinstance(layer, QgsRasterLayer) \
                or layer.customProperty(RESULT_PROPERTY):
            return
        if layer is not self.layer():
            self.layer_combo.setLayer(layer)

    def _layer_changed(self, layer: Optional[QgsRasterLayer]) -> None:
        """New layer: extent defaults to the whole layer, in its CRS; suggest a fresh output name."""
        if not isinstance(layer, QgsRasterLayer):
            self._update_size()
            return
        self.extent_widget.setOriginalExtent(layer.extent(), layer.crs())
        self.extent_widget.setOutputCrs(layer.crs())
        self.extent_widget.setOutputExtentFromOriginal()
        _, units = pixel_size_units(layer)
        self.fields["target_res"].setSuffix(f" {units}")
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
        self._show_outline()

    def _show_outline(self) -> None:
        """Outline the chosen extent on the canvas while the panel is shown."""
        layer = self.layer()
        if self.isVisible() and layer is not None:
            self.outline.show(self.extent(), layer.crs())
        else:
            self.outline.clear()

    def dispose(self) -> None:
        """Before the plugin unloads: stop a running engine (and wait for it to clean up), take the outline and the
        swipe off the canvas."""
        self.runs.dispose()
        self.result_tools.set_compare(False)
        self.outline.dispose()

    def _update_size(self) -> None:
        """The extent's corners now; its sizes come from the engine's planning call (scheduled here)."""
        layer = self.layer()
        extent = self.extent()
        if layer is None or extent.isEmpty():
            self.extent_label.setText("")
        else:
            crs = layer.crs().authid() or "pixels, no CRS"
            pixel = layer.rasterUnitsPerPixelX()
            decimals = max(0, min(8, 2 - int(math.floor(math.log10(pixel))))) if pixel > 0 else 2
            x0, x1, y0, y1 = (f"{v:,.{decimals}f}" for v in (extent.xMinimum(), extent.xMaximum(),
                                                              extent.yMinimum(), extent.yMaximum()))
            self.extent_label.setText(f"x {x0} to {x1}\ny {y0} to {y1} ({crs})")
        self.schedule_plan()

    # ---- the planning call ---------------------------------------------------------------
    def schedule_plan(self, *_args: Any) -> None:
        """Something changed: what is shown is no longer the engine's answer; ask again shortly."""
        if not hasattr(self, "footer"):
            return  # still building the panel: the first plan is asked for once it is whole
        self._plan = None
        self.size_label.setText("planning ...")
        self.checks_label.setText("")
        self.estimate_label.setText("")
        self.plan_watcher.schedule()

    def plan_arguments(self) -> List[str]:
        """The planning call's arguments for the panel as it is now (raises InputError): the request's own."""
        return self.build_request(dry_run=True, output_required=False).planning_arguments()

    def _show_plan(self, plan: QuickPlan) -> None:
        if self._iceplant_returns(plan):
            return  # the box is ticked again: the planning call is asked again, with the probability
        self._plan = self._with_iceplant_availability(plan)
        output, window = plan.output_size, plan.window
        if output and window:
            self.size_label.setText(f"{window[2]} x {window[3]} input px -> {output[0]} x {output[1]} output px")
        else:
            self.size_label.setText("no output: see Checks")
        self.detail_control.apply_plan(self._plan)
        problems, warnings = self._plan.problems, self._plan.warnings
        lines = [f'<span style="color:#b00">&#10007; {_html(p)}</span>' for p in problems]
        lines += [f'<span style="color:#a60">! {_html(w)}</span>' for w in warnings]
        self.checks_label.setText("<br>".join(lines) if lines else
                                  ('<span style="color:#070">&#10003; input, extent, bands, output folder, disk and '
                                   'model checked</span>'))
        self._show_detail_note()
        self._show_estimate()
        self.run_button.setEnabled(not self.runs.busy and not problems)
        self.run_button.setToolTip("; ".join(problems) if problems else "Run the engine on the extent")
        self.planned.emit(self._plan)

    def _model_info(self) -> Optional[ModelSummary]:
        return self._plan.model if self._plan is not None else None

    def _iceplant_toggled(self, checked: bool) -> None:
        """The user's tick (the box is only clickable where the layer can have the probability) is their wish: kept
        while a layer that cannot have it is chosen, and shown again on the next that can."""
        self._iceplant_wanted = checked
        self.schedule_plan()

    def _iceplant_returns(self, plan: QuickPlan) -> bool:
        """Tick the box again where the user wanted the probability, the layer can have it and the box was off."""
        if not self._iceplant_wanted or self.iceplant_check.isChecked() or "iceplant" in plan.unavailable:
            return False
        self._set_iceplant_tick(True)
        self.iceplant_check.setEnabled(True)
        self.schedule_plan()
        return True

    def _with_iceplant_availability(self, plan: QuickPlan) -> QuickPlan:
        """The iceplant box off, with the reason, where the layer cannot have the layer; a tick on it is taken off (kept
        as the user's wish, see _iceplant_toggled), and the plan's problem becomes a note of that."""
        reason = plan.unavailable.get("iceplant")
        self.iceplant_check.setEnabled(reason is None)
        self.iceplant_check.setToolTip(f"Not for this layer: {reason}" if reason else self._iceplant_tooltip)
        if not (reason and self._iceplant_wanted):
            return plan
        self._set_iceplant_tick(False)
        return replace(plan, problems=tuple(p for p in plan.problems if p != reason),
                       warnings=(*plan.warnings, f"iceplant probability unticked for this layer (ticked again for one "
                                                 f"that can have it): {reason}"))

    def _set_iceplant_tick(self, ticked: bool) -> None:
        """Show the box ticked or not without taking it as the user's choice."""
        self.iceplant_check.blockSignals(True)
        self.iceplant_check.setChecked(ticked)
        self.iceplant_check.blockSignals(False)

    def estimated_seconds(self) -> Optional[float]:
        """The run's time from the last measured run of this model and options on this machine (None: none yet)."""
        size = self._plan.output_size if self._plan is not None else None
        options = self.options()
        rate = self.runs.seconds_per_mpx(options, self.engine_box.model_dir())
        if not size or rate is None:
            return None
        return rate * size[0] * size[1] / 1e6 * options.samples

    def _show_estimate(self, *_args: Any) -> None:
        plan = self._plan
        if plan is None or not plan.output_size:
            self.estimate_label.setText("")
            return
        size, written = plan.output_size, plan.output_bytes + plan.spread_bytes
        seconds = self.estimated_seconds()
        timing = (f"about {format_duration(seconds)} (measured on the last such run here)" if seconds is not None
                  else "time known after a first run of this model here")
        free = f", {format_bytes(plan.disk_free)} free" if plan.disk_free is not None else ""
        self.estimate_label.setText(f"{size[0]} x {size[1]} px, {format_bytes(written)} on disk{free}; {timing}")

    # ---- shown and hidden ---------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        """Outline the extent again, and check the engine the first time the panel is shown so the
        device is known up front."""
        super().showEvent(event)
        self._show_outline()
        self.engine_box.check_once()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt override
        """A hidden panel (its toolbar button, or another dock over it) leaves no outline on the map."""
        self.outline.clear()
        super().hideEvent(event)

    # ---- running ------------------------------------------------------------------------
    def bounds(self) -> Optional[Tuple[float, float, float, float]]:
        """--bounds of the chosen extent; None for the whole layer (its extent as QGIS computes it can differ from
        the engine's in the last digits, which would read as an extent reaching beyond the raster)."""
        layer, extent = self.layer(), self.extent()
        if layer is None:
            return None
        full = layer.extent()
        tolerance = 0.01 * min(layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY())
        corners = zip((extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()),
                      (full.xMinimum(), full.yMinimum(), full.xMaximum(), full.yMaximum()))
        if not extent.isEmpty() and all(abs(a - b) <= tolerance for a, b in corners):
            return None
        return rectangle_bounds(extent)

    def output_path(self) -> str:
        output = self.output_widget.filePath().strip()
        if output and not output.lower().endswith((".tif", ".tiff")):
            output += ".tif"
        return output

    def build_request(self, dry_run: bool, output_required: bool = True) -> SrRequest:
        """The request for the current panel state; raises InputError."""
        layer = self.layer()
        if layer is None:
            raise InputError("choose a raster layer first")
        output = self.output_path()
        if not output and output_required:
            raise InputError("choose an output file")
        return SrRequest(
            input_path=raster_file_path(layer),
            output_path=output,
            options=self.options(),
            bounds=self.bounds(),
            iceplant_path=iceplant_path_for(output) if self.iceplant_check.isChecked() else None,
            model_dir=self.engine_box.model_dir(),
            dry_run=dry_run,
        )

    def run(self) -> None:
        """Ask for a run of the panel's request: the checks are the planning call's, on screen (or waited for, where
        Run came before the answer); a large run asks first."""
        if self.runs.busy:
            return
        for _ in range(2):  # a second call where the first answer ticked the iceplant box again (_iceplant_returns)
            if self._plan is None:
                self.plan_watcher.answer_now()  # shown as any answer is: self._plan
        plan = self._plan
        if plan is None:
            self.runs.report_error("the engine's planning call gave no answer for the panel as it is: press Run again")
            return
        if plan.problems:
            self.runs.report_error(plan.problems[0])
            return
        try:  # after the answer, which may tick or untick the iceplant box
            request = self.build_request(dry_run=False)
        except InputError as exc:
            self.runs.report_error(str(exc))
            return
        self.save_settings()
        seconds = self.estimated_seconds()
        written = plan.output_bytes + plan.spread_bytes
        if (seconds or 0) > LARGE_RUN_S or written > LARGE_RUN_BYTES:
            summary = self.estimate_label.text()
            answer = QMessageBox.question(self, "InfScene: large run", f"This run will produce {summary}. Continue?")
            if answer != QMessageBox.Yes:
                self.status_label.setText("not started")
                return
        layer = self.layer()
        self.runRequested.emit(RunParameters(request, plan, layer.id() if layer is not None else ""))

    def cancel(self) -> None:
        """Stop the running engine; it removes its temporary file, so no partial output remains."""
        self.runs.cancel()

    def _run_started(self) -> None:
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setValue(0)

    def _show_progress(self, percent: int, text: str) -> None:
        self.progress_bar.setValue(percent)
        if text:
            self.status_label.setText(text)

    def _run_finished(self, outcome: RunOutcome) -> None:
        if not outcome.succeeded:
            self.progress_bar.setValue(0)  # a cancelled or failed run left its bar part-way (issue 36: at 25 %)
        self.run_button.setEnabled(self._plan is None or not self._plan.problems)
        self.cancel_button.setEnabled(False)
        self.schedule_plan()  # the output name changed; what was measured changes the estimate

    def _results_added(self, layer_id: str, folder: str) -> None:
        """The run's layers are on the map: the result tools act on them, and the next output gets a free name."""
        self.result_tools.show_result(layer_id, self.runs.input_layer_id, folder)
        layer = self.layer()
        if layer is not None:
            self.output_widget.setFilePath(str(settings.free_output_path(Path(folder), output_stem(layer))))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.save_settings()
        self.outline.clear()
        super().closeEvent(event)


def _form(box: QWidget) -> QFormLayout:
    """A form whose long rows put the label above the field, so the panel fits a narrow dock (328 px by default)."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.WrapLongRows)
    return form


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def output_stem(layer: QgsRasterLayer) -> str:
    """`<layer name>_sr` with anything but letters, digits, '-' and '_' replaced, for a safe file name."""
    safe = re.sub(r"[^\w-]+", "_", layer.name()).strip("_") or "layer"
    return f"{safe}_sr"
