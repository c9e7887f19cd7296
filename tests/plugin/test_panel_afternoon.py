"""Issue 23, the analyst's afternoon: the checks come before Run, the size is the engine's, a cancel reads as a
cancel, the panel fits a small screen, results are named and compared. Against the real engine, as test_dock."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import List

import numpy as np
from osgeo import gdal
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtWidgets import QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QWidget

from infscene.modelformat.files import DEFAULT_MODEL_DIR
from infscene_qgis.compare import SwipeTool
from infscene_qgis.engine_request import SrOptions
from infscene_qgis.protocol import MAX_STEPS
from infscene_qgis.engine_task import RunOutcome, quick_plan
from infscene_qgis.processing_algorithms import SuperResolveAlgorithm
from infscene_qgis.result_layers import (RESULT_PROPERTY, result_name, short_name, spread_layer_name,
                                         style_spread)
from plugin_helpers import NAIP, leftovers
from test_dock import critical_messages, dock, newest_group, result_layer, run_to_end, wait_until  # noqa: F401 - fixture

PLANET = NAIP.with_name("planet_sn7_48.tif")  # int16, EPSG:3857
SMALL_SCREEN_DOCK_HEIGHT = 560  # 768 px less QGIS's title, menu, two toolbar rows and status bar
SMALLEST_SCREEN_DOCK_HEIGHT = 512  # the same at 1280x720
DEFAULT_DOCK_WIDTH = 328  # QGIS 3.22's right dock area at 1366x768, as issue 36 measured it


def replan(panel) -> dict:
    panel.schedule_plan()
    wait_until(lambda: panel._plan is not None)
    return panel._plan


def add_layer(path: Path, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


# ---- 2: one fast planning call, the engine's own sizes --------------------------------------------------------
def test_the_planning_call_answers_with_the_engines_size(engine_python):
    """Its speed is measured by scripts/measure_panel.py (docs/plugin.md), not asserted here; that it loads no model
    library (torch, scikit-image) is tested in tests/test_startup.py."""
    call = quick_plan(engine_python, [str(NAIP), "--scale", "4", "--model", str(DEFAULT_MODEL_DIR)])
    assert call.plan is not None, call.error
    assert call.plan.problems == () and call.plan.output_size == (256, 256)
    assert call.plan.model is not None and call.plan.model.family == "e2diffsr" and call.plan.model.texture_head
    assert call.plan.seconds >= 0 and call.wall_s >= call.plan.seconds  # both reported, for the panel's figures


def test_size_and_run_agree_and_the_size_follows_the_scale(dock):
    dock.fields["scale"].setValue(2.5)  # 24 px x 2.5 = 60: the engine's rounding, not the panel's
    plan = replan(dock)
    assert dock.size_label.text() == f"24 x 24 input px -> {plan.output_size[0]} x {plan.output_size[1]} output px"
    outcome = run_to_end(dock)
    assert outcome.succeeded, outcome.error
    assert (outcome.plan.output_width, outcome.plan.output_height) == plan.output_size


def test_a_changed_option_clears_the_shown_figures_until_the_engine_answers(dock):
    assert "48 x 48" in dock.size_label.text() and dock.estimate_label.text()
    dock.fields["scale"].setValue(3.0)
    assert dock.size_label.text() == "planning ..." and dock.estimate_label.text() == ""
    replan(dock)
    assert "72 x 72" in dock.size_label.text()


# ---- 1: every check before Run -------------------------------------------------------------------------------
def test_an_extent_outside_the_raster_shows_no_size_and_disables_run(dock, qgis_iface):
    dock.set_extent(QgsRectangle(0.0, 0.0, 10.0, 10.0))
    plan = replan(dock)
    assert any("outside the raster" in p for p in plan.problems)
    assert dock.size_label.text() == "no output: see Checks"
    assert not dock.run_button.isEnabled() and "outside the raster" in dock.run_button.toolTip()
    assert "outside the raster" in dock.checks_label.text()


def test_iceplant_is_off_for_an_int16_layer_with_the_reason(dock):
    dock.iceplant_check.setChecked(True)
    dock.layer_combo.setLayer(add_layer(PLANET, "planet"))
    replan(dock)
    assert not dock.iceplant_check.isEnabled() and not dock.iceplant_check.isChecked()
    assert "8-bit" in dock.iceplant_check.toolTip() and "int16" in dock.iceplant_check.toolTip()
    assert dock.run_button.isEnabled()  # the run itself can go on, without the probability
    assert any("iceplant probability unticked" in w for w in dock._plan.warnings)
    dock.layer_combo.setLayer(QgsProject.instance().mapLayersByName("naip")[0])
    replan(dock)
    # the user's tick comes back with a layer that can have it (issue 36: it stayed dropped without a word)
    assert dock.iceplant_check.isEnabled() and dock.iceplant_check.isChecked()
    assert dock.build_request(dry_run=False).iceplant_path is not None
    dock.iceplant_check.setChecked(False)  # and a tick taken off by the user stays off
    dock.layer_combo.setLayer(add_layer(PLANET, "planet 2"))
    replan(dock)
    dock.layer_combo.setLayer(QgsProject.instance().mapLayersByName("naip")[0])
    replan(dock)
    assert not dock.iceplant_check.isChecked()


def test_run_pressed_before_the_answer_that_ticks_iceplant_again_runs_with_it(dock):
    """Run waits for the planning call's answer; where that answer ticks the iceplant box again (the user's tick, taken
    off on an int16 layer), the panel asks once more, and Run takes that answer instead of finding none."""
    dock.iceplant_check.setChecked(True)
    dock.layer_combo.setLayer(add_layer(PLANET, "planet"))
    replan(dock)
    assert not dock.iceplant_check.isChecked()
    dock.layer_combo.setLayer(QgsProject.instance().mapLayersByName("naip")[0])
    outcome = run_to_end(dock)  # at once: no answer yet for the 8-bit layer
    assert outcome.succeeded, outcome.error
    assert dock.iceplant_check.isChecked() and any(path.endswith("_iceplant.tif") for path in outcome.outputs)


def test_a_tiff_without_georeference_plans_and_runs_on_its_pixels(dock, tmp_path):
    plain = tmp_path / "plain.tif"
    source = gdal.Open(str(NAIP))
    driver = gdal.GetDriverByName("GTiff")
    out = driver.Create(str(plain), 40, 30, 3, gdal.GDT_Byte)
    for band in range(1, 4):
        out.GetRasterBand(band).WriteArray(source.GetRasterBand(band).ReadAsArray()[:30, :40])
    out = None
    layer = add_layer(plain, "plain")
    dock.layer_combo.setLayer(layer)
    chosen = QgsRectangle(4.0, -26.0, 20.0, -6.0)  # QGIS's frame: x = column, y = -row
    dock.set_extent(chosen)
    plan = replan(dock)
    assert plan.problems == () and plan.window == (4, 6, 16, 20)
    assert any("no georeference" in w and "as QGIS draws it" in w for w in plan.warnings)
    assert dock.size_label.text() == "16 x 20 input px -> 32 x 40 output px"
    outcome = run_to_end(dock)
    assert outcome.succeeded, outcome.error
    # issue 36: the result lay at y +6..+26, upside down; now it is drawn exactly over the extent chosen, north-up
    result = result_layer()
    assert result.extent() == chosen and result.rasterUnitsPerPixelX() == result.rasterUnitsPerPixelY() == 0.5
    assert gdal.Open(result.source()).GetGeoTransform()[5] < 0


def test_a_detail_an_sr3_model_cannot_take_is_off_with_the_reason(dock):
    replan(dock)  # the fixture's model is SR3
    assert not dock.detail_control.slider.isEnabled() and "SR3" in dock.detail_control.slider.toolTip()
    assert "SR3" in dock.detail_note.text()


def test_a_failed_step_adds_what_was_written_and_names_the_step(dock, qgis_iface, tmp_path):
    dock.iceplant_check.setChecked(True)
    replan(dock)
    request = dock.build_request(dry_run=False)
    dock.runs.files_before = {}
    dock.runs.input_layer_id = QgsProject.instance().mapLayersByName("naip")[0].id()
    shutil.copy(NAIP, request.output_path)  # the super-resolution was written; the iceplant step then failed

    dock.runs._completed(RunOutcome(error="values out of range"), request)

    assert Path(result_layer_path := newest_group().findLayers()[0].layer().source()) == Path(request.output_path)
    [message] = critical_messages(qgis_iface)
    assert "iceplant probability step failed: values out of range" in message and "sr.tif" in message
    assert result_layer_path


# ---- 3: a cancel reads as a cancel ----------------------------------------------------------------------------
def test_a_cancel_is_reported_as_a_cancel_and_no_task_reports_it(dock, qgis_iface, tmp_path):
    dock.set_options(SrOptions(scale=2.0, steps=MAX_STEPS, patch=32, overlap=8))
    outcomes: List[RunOutcome] = []
    dock.runs.finished.connect(outcomes.append)
    dock.run()
    assert QgsApplication.taskManager().count() == 0  # no QgsTask: QGIS would call a cancelled one "Task failed"
    wait_until(lambda: dock.progress_bar.value() > 0)
    assert outcomes == [] and dock.runs.job.outcome.first_progress_s is not None
    dock.cancel()
    wait_until(lambda: bool(outcomes))
    assert outcomes[0].cancelled and leftovers(tmp_path) == []
    assert critical_messages(qgis_iface) == []
    assert any("cancelled" in text for text in qgis_iface.messageBar().get_messages(Qgis.Info))
    assert dock.progress_bar.value() == 0  # not left part-way (issue 36)


def test_the_engine_check_is_no_qgis_task(dock):
    """Issue 36: as a QgsTask it showed in QGIS's task list and sometimes announced "Task complete"."""
    dock.engine_box.check()
    assert dock.runs.checking and QgsApplication.taskManager().count() == 0
    wait_until(lambda: not dock.runs.checking, 60)
    assert "InfScene" in dock.engine_box.status.text() and dock.engine_box.check_button.isEnabled()


# ---- 4: layout, labels, tooltips, units, help ------------------------------------------------------------------
def test_run_and_cancel_stay_outside_the_scroll_area_and_fit_a_small_screen(dock):
    for button in (dock.run_button, dock.cancel_button):
        assert not dock.scroll.isAncestorOf(button) and dock.footer.isAncestorOf(button)
    assert dock.footer.sizeHint().height() + dock.scroll.minimumHeight() <= SMALLEST_SCREEN_DOCK_HEIGHT


def test_the_panel_fits_its_default_width_with_every_control_reachable(dock):
    """At QGIS's default dock width (issue 36: the options were 113 px wider than 328 px, Check and the model folder's
    browse button off-screen, and a long `done: <path>` line widened the dock)."""
    dock.status_label.setText("done: " + "/a-folder-with-a-long-name" * 12 + "/result.tif")
    dock.setFloating(True)
    dock.resize(DEFAULT_DOCK_WIDTH, SMALL_SCREEN_DOCK_HEIGHT)
    dock.show()
    QApplication.processEvents()
    assert dock.minimumSizeHint().width() <= DEFAULT_DOCK_WIDTH and dock.width() == DEFAULT_DOCK_WIDTH
    body = dock.scroll.widget()
    assert body.width() <= dock.scroll.viewport().width()  # no sideways scrolling
    for button in dock.findChildren(QAbstractButton):
        if button.isVisibleTo(dock):
            right = button.mapTo(dock, button.rect().topRight()).x()
            assert right < dock.width(), f"{button.text() or button.toolTip()!r} ends at {right} px"
    assert dock.status_label.toolTip().endswith("/result.tif")


def test_every_option_has_a_label_a_tooltip_and_units(dock):
    form = dock.extent_widget.parentWidget().layout()
    assert form.labelForField(dock.extent_widget).text() == "Extent"
    assert "487,400.00" in dock.extent_label.text() and "EPSG:26914" in dock.extent_label.text()
    options = dock.fields["scale"].parentWidget()
    for widget in options.findChildren(QWidget):
        if isinstance(widget, (QAbstractSpinBox, QComboBox)) and widget.parentWidget() is options:
            assert widget.toolTip(), options.layout().labelForField(widget).text()
    assert dock.fields["target_res"].suffix() == " m" and dock.fields["patch"].suffix() == " px"
    assert dock.fields["overlap"].suffix() == " px"
    assert "plugin.md" in dock.help_label.text() and dock.help_label.openExternalLinks()


def test_the_layer_list_follows_the_active_layer_but_not_to_a_result_nor_while_hidden(dock, qgis_iface):
    dock.show()
    planet = add_layer(PLANET, "planet")
    qgis_iface.currentLayerChanged.emit(planet)
    assert dock.layer() is planet
    result = add_layer(NAIP, "a result")
    result.setCustomProperty(RESULT_PROPERTY, True)
    qgis_iface.currentLayerChanged.emit(result)
    assert dock.layer() is planet
    dock.hide()  # a hidden panel (issue 36: a Processing output became its input)
    qgis_iface.currentLayerChanged.emit(add_layer(NAIP, "another input"))
    assert dock.layer() is planet


def test_processing_has_help_a_short_scale_and_a_lasting_default_output(provider, tmp_path):
    algorithm = SuperResolveAlgorithm()
    algorithm.initAlgorithm()
    assert algorithm.helpUrl().endswith("plugin.md#processing-algorithms")
    assert algorithm.parameterDefinition("SCALE").metadata()["widget_wrapper"]["decimals"] == 2
    default = Path(algorithm.parameterDefinition("OUTPUT").defaultValue())
    assert default.parent == Path.home() / "InfScene" and "tmp" not in default.parts


# ---- 5 and 6: names, spread, compare ----------------------------------------------------------------------------
def test_result_names_are_short_with_scale_model_and_resolution():
    long_stem = "SN7_global_monthly_2020_01_mosaic_L15-0331E-1257N_1327_3160_13_clipped"
    assert len(short_name(long_stem)) == 24 and short_name(long_stem).endswith("clipped")
    assert result_name("planet", 4.0, "sr3", 1.1934, "m") == "planet x4 sr3 1.19 m"
    # runs that differ in detail or seed differ in name (issue 36: all three details read alike)
    names = {result_name("planet", 4.0, "e2diffsr", 1.1934, "m", detail) for detail in (0.0, 0.7, 1.0)}
    assert names == {f"planet x4 e2diffsr detail {d} 1.19 m" for d in ("0", "0.7", "1")}
    assert result_name("planet", 4.0, "e2diffsr", 1.1934, "m", 0.7, seed=3) == "planet x4 e2diffsr detail 0.7 seed 3 1.19 m"


def test_the_spread_legend_bar_and_name_say_dn_the_input_range_and_the_layer_range(tmp_path):
    # QGIS draws an interpolated ramp in the layer tree as one bar with its ends' numbers, not the items' labels
    path = tmp_path / "sr_spread.tif"
    spread = gdal.GetDriverByName("GTiff").Create(str(path), 32, 32, 1, gdal.GDT_Float32)
    spread.GetRasterBand(1).WriteArray(np.linspace(0.0, 0.3, 32 * 32, dtype=np.float32).reshape(32, 32))
    spread = None
    layer = QgsRasterLayer(str(path), "spread", "gdal")
    scale = style_spread(layer, (0.0, 250.0))
    legend = layer.renderer().shader().rasterShaderFunction().legendSettings()
    assert legend.useContinuousLegend() and legend.minimumLabel() == "0 DN: every sample agrees"
    assert legend.maximumLabel() == f"{scale.top:.3g} DN and more (2 % of the input's 0-250)"
    assert spread_layer_name("sr", 2, scale) == f"sr spread (2 samples, p98 {scale.p98:.2g}, max 0.3 DN)"


def test_zoom_and_swipe_compare_after_a_run(dock, qgis_iface):
    assert not dock.result_tools.compare_button.isEnabled()
    outcome = run_to_end(dock)
    assert outcome.succeeded, outcome.error
    result = dock.result_tools.result_layer()
    assert result is not None and result.customProperty(RESULT_PROPERTY)
    canvas = qgis_iface.mapCanvas()
    canvas.setLayers([result, QgsProject.instance().mapLayersByName("naip")[0]])
    dock.result_tools.zoom_to_result()
    assert canvas.extent().contains(result.extent()) or canvas.extent().intersects(result.extent())
    dock.result_tools.compare_button.setChecked(True)
    tool = canvas.mapTool()
    assert isinstance(tool, SwipeTool) and tool.source.name() == "naip"
    wait_until(lambda: tool.item is not None and tool.item.image is not None)
    tool.set_position(10)
    assert tool.item.position == 10
    dock.result_tools.compare_button.setChecked(False)
    assert canvas.mapTool() is not tool
