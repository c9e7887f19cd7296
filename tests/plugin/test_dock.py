"""The dock panel drives the real engine through its QgsTask: layers added when done, cancel
leaves nothing, bad input reported in the message bar, settings kept between sessions."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProject,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRectangle,
    QgsSettings,
)
from qgis.PyQt.QtCore import QCoreApplication, Qt

from infscene_qgis import dock as dock_module
from infscene_qgis import result_layers
from infscene_qgis.dock import InfSceneDock
from infscene_qgis.engine_request import SrOptions
from infscene_qgis.protocol import MAX_STEPS
from infscene_qgis.engine_task import RunOutcome
from plugin_helpers import NAIP, NAIP_WINDOW, flag_values, leftovers, stretches

TIMEOUT_S = 180.0


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Spin the Qt event loop (tasks report back through it) until `condition` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the InfScene task"
        QCoreApplication.processEvents()
        time.sleep(0.02)


@pytest.fixture()
def dock(qgis_iface, naip_layer, tiny_model_dir, tmp_path, monkeypatch):
    # A modal "large run" question would block a headless test forever; the estimate of a long-chain run depends
    # on the machine's load (a busy CPU makes it cross LARGE_RUN_S), so the question is answered Yes here.
    monkeypatch.setattr(dock_module.QMessageBox, "question", lambda *args: dock_module.QMessageBox.Yes)
    qgis_iface.messageBar().clear_messages()
    panel = InfSceneDock(qgis_iface)
    panel.layer_combo.setLayer(naip_layer)
    panel.set_extent(NAIP_WINDOW)
    panel.set_options(SrOptions(scale=2.0, steps=2, patch=32, overlap=8))
    panel.engine_box.model_widget.setFilePath(str(tiny_model_dir))
    panel.output_widget.setFilePath(str(tmp_path / "sr.tif"))
    wait_until(lambda: panel._plan is not None)
    yield panel
    wait_until(lambda: not panel.runs.busy and QgsApplication.taskManager().count() == 0)
    panel.deleteLater()


def run_to_end(panel: InfSceneDock) -> RunOutcome:
    outcomes: List[RunOutcome] = []
    panel.runs.finished.connect(outcomes.append)
    panel.run()
    wait_until(lambda: bool(outcomes))
    return outcomes[0]


def critical_messages(qgis_iface) -> List[str]:
    return qgis_iface.messageBar().get_messages(Qgis.Critical)


def newest_group():
    """The group the last run added (the panel inserts each at the top of the layer tree)."""
    groups = [node for node in QgsProject.instance().layerTreeRoot().children() if node.name().startswith("InfScene ")]
    assert groups, "no InfScene group was added"
    return groups[0]


def result_layer(_group_name: str = "") -> QgsRasterLayer:
    [layer] = [node.layer() for node in newest_group().findLayers()]
    return layer


def test_the_extent_is_an_outline_only_and_a_hidden_panel_leaves_none(dock):
    """A filled outline tinted the result under it (issue 36); hiding the panel from its toolbar button left it."""
    band = dock.outline.band
    dock.show()
    assert band.numberOfVertices() > 0 and band.fillColor().alpha() == 0 and band.strokeColor().alpha() == 255
    dock.hide()
    assert band.numberOfVertices() == 0
    dock.set_extent(NAIP_WINDOW)  # a change while hidden draws nothing
    assert band.numberOfVertices() == 0
    dock.show()
    assert band.numberOfVertices() > 0


def test_run_adds_the_result_grouped_with_an_rgb_renderer(dock, qgis_iface, tmp_path):
    assert dock.size_label.text() == "24 x 24 input px -> 48 x 48 output px"

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    assert outcome.plan is not None and outcome.plan.total == outcome.progress.total == 18  # with the context margin
    assert (tmp_path / "sr.tif").is_file()
    group = newest_group()
    [layer] = [node.layer() for node in group.findLayers()]
    assert layer.name() == "naip x2 tiny-test 2.5 m" and group.name() == "InfScene naip x2 tiny-test 2.5 m"
    assert Path(layer.source()) == tmp_path / "sr.tif"
    renderer = layer.renderer()
    assert renderer.type() == "multibandcolor"
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 3)
    assert dock.progress_bar.value() == 100
    wait_until(lambda: dock._plan is not None)  # the next run's plan: the time measured by this one
    assert "48 x 48 px" in dock.estimate_label.text() and "measured on the last such run" in dock.estimate_label.text()
    assert critical_messages(qgis_iface) == []


def use_planet_corner(panel: InfSceneDock) -> QgsRasterLayer:
    """Point the panel at the top-left 24 x 24 pixels of the Planet analytic fixture (B,G,R,NIR)."""
    planet = QgsRasterLayer(str(NAIP.with_name("planet_sn7_48.tif")), "planet", "gdal")
    QgsProject.instance().addMapLayer(planet)
    panel.layer_combo.setLayer(planet)
    full = planet.extent()
    panel.set_extent(QgsRectangle(full.xMinimum(), full.yMaximum() - 24 * planet.rasterUnitsPerPixelY(),
                                 full.xMinimum() + 24 * planet.rasterUnitsPerPixelX(), full.yMaximum()))
    return planet


def test_planet_analytic_band_order_is_rendered_as_true_colour(dock, tmp_path):
    use_planet_corner(dock)
    dock.fields["bands"].setText("3,2,1,4")  # B,G,R,NIR as in Planet analytic products
    dock.output_widget.setFilePath(str(tmp_path / "planet_sr.tif"))

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    group = newest_group()
    [layer] = [node.layer() for node in group.findLayers()]
    renderer = layer.renderer()
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)


def test_the_result_is_drawn_with_the_input_layers_stretch_fixed(dock, naip_layer, tmp_path):
    naip_layer.renderer().redContrastEnhancement().setMaximumValue(123.0)  # as a user's own stretch
    drawn = stretches(naip_layer)

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    layer = result_layer("InfScene sr")
    assert stretches(layer) == drawn and drawn["red"][2] == 123.0
    assert layer.renderer().minMaxOrigin().limits() == QgsRasterMinMaxOrigin.None_


def test_a_reordered_result_takes_each_source_bands_stretch(dock, tmp_path):
    planet = use_planet_corner(dock)
    dock.fields["bands"].setText("3,2,1")  # B,G,R drawn by QGIS as bands 1,2,3; NIR left out
    dock.output_widget.setFilePath(str(tmp_path / "planet_sr.tif"))
    drawn = {band: (low, high) for band, low, high in stretches(planet).values()}

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    result = stretches(result_layer("InfScene planet_sr"))
    assert {role: band for role, (band, _, _) in result.items()} == {"red": 3, "green": 2, "blue": 1}
    assert {band: (low, high) for band, low, high in result.values()} == drawn


def test_without_its_input_layer_the_result_gets_its_own_stretch(dock, naip_layer, tmp_path):
    dock.run()
    QgsProject.instance().removeMapLayer(naip_layer.id())
    wait_until(lambda: not dock.runs.busy and QgsApplication.taskManager().count() == 0)

    layer = result_layer("InfScene sr")
    assert layer.renderer().minMaxOrigin().limits() == QgsRasterMinMaxOrigin.CumulativeCut


def test_iceplant_probability_is_added_above_the_result_in_0_1_pseudocolour(iceplant_engine, dock, tmp_path):
    dock.iceplant_check.setChecked(True)

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    group = newest_group()
    probability, sr = [node.layer() for node in group.findLayers()]
    assert Path(probability.source()) == tmp_path / "sr_iceplant.tif"
    assert Path(sr.source()) == tmp_path / "sr.tif"
    renderer = probability.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)


def test_cancel_leaves_no_file_and_adds_no_layer(dock, tmp_path):
    # the longest chain, so the run cannot finish before the cancel reaches it on a fast machine
    dock.set_options(SrOptions(scale=2.0, steps=MAX_STEPS, patch=32, overlap=8))
    outcomes: List[RunOutcome] = []
    dock.runs.finished.connect(outcomes.append)
    layers_before = len(QgsProject.instance().mapLayers())

    dock.run()
    wait_until(lambda: dock.progress_bar.value() > 0)
    dock.cancel()
    wait_until(lambda: bool(outcomes))

    assert outcomes[0].cancelled
    assert leftovers(tmp_path) == []
    assert len(QgsProject.instance().mapLayers()) == layers_before
    assert dock.status_label.text() == "cancelled; no output was written"
    assert dock.run_button.isEnabled()


@pytest.mark.parametrize(
    ("extent", "message"),
    [((0.0, 0.0, 10.0, 10.0), "outside the raster"), ((487400.0, 5207625.0, 487400.0, 5207745.0), "empty extent")],
)
def test_bad_extent_is_reported_in_the_message_bar(dock, qgis_iface, tmp_path, extent, message):
    started: List[bool] = []
    dock.runs.started.connect(lambda: started.append(True))
    dock.set_extent(QgsRectangle(*extent))
    dock.run()  # at once: before the planning call's answer, which Run then waits for
    wait_until(lambda: not dock.runs.busy and critical_messages(qgis_iface))

    assert started == []  # refused by the checks, no engine started
    assert any(message in text for text in critical_messages(qgis_iface))
    assert message in dock.status_label.text()
    assert leftovers(tmp_path) == []


def test_web_layer_is_reported_without_starting_the_engine(dock, qgis_iface):
    web = QgsRasterLayer("type=xyz&url=https://tile.openstreetmap.org/{z}/{x}/{y}.png&zmax=19&zmin=0", "osm", "wms")
    QgsProject.instance().addMapLayer(web)
    dock.layer_combo.setLayer(web)

    dock.run()

    assert QgsApplication.taskManager().count() == 0
    assert any("not from a file" in text for text in critical_messages(qgis_iface))


def test_file_the_engine_cannot_read_is_reported(dock, qgis_iface, tmp_path):
    broken = tmp_path / "scene.tif"
    broken.write_bytes(NAIP.read_bytes())
    layer = QgsRasterLayer(str(broken), "scene", "gdal")
    QgsProject.instance().addMapLayer(layer)
    dock.layer_combo.setLayer(layer)
    dock.set_extent(NAIP_WINDOW)
    broken.write_bytes(b"not a raster any more")

    dock.run()
    wait_until(lambda: not dock.runs.busy and critical_messages(qgis_iface))

    assert any("scene.tif" in text for text in critical_messages(qgis_iface))


def test_settings_persist_between_sessions(dock, qgis_iface, tmp_path):
    options = SrOptions(scale=3.5, target_res=0.6, steps=7, patch=64, overlap=16, mode="average", seed=42,
                        device="cpu", bands="3,2,1,4", samples=3, detail=0.35)
    dock.set_options(options)
    dock.iceplant_check.setChecked(True)
    dock.close()

    reopened = InfSceneDock(qgis_iface)

    assert reopened.options() == options
    assert reopened.iceplant_check.isChecked()
    assert reopened.output_widget.filePath().startswith(str(tmp_path))
    reopened.deleteLater()


def test_output_defaults_to_a_persistent_folder(qgis_iface, naip_layer):
    panel = InfSceneDock(qgis_iface)
    panel.layer_combo.setLayer(naip_layer)

    assert Path(panel.output_widget.filePath()).parent == Path.home() / "InfScene"
    panel.deleteLater()


def test_steps_are_the_models_unless_a_number_is_chosen(dock):
    dock.fields["steps"].set_option_value(None)
    assert dock.fields["steps"].text() == "model default"
    assert "--steps" not in dock.build_request(dry_run=False).arguments()
    dock.fields["steps"].setValue(3)
    assert flag_values(dock.build_request(dry_run=False).arguments(), "--steps") == ["3"]


def test_samples_are_sent_with_the_spread_beside_the_output(dock, tmp_path):
    assert not {"--samples", "--spread"} & set(dock.build_request(dry_run=False).arguments())
    dock.fields["samples"].setValue(3)

    arguments = dock.build_request(dry_run=False).arguments()

    assert flag_values(arguments, "--samples") == ["3"]
    assert flag_values(arguments, "--spread") == [str(tmp_path / "sr_spread.tif")]


def detail_sent(panel: InfSceneDock) -> List[str]:
    """Every value the panel's request gives --detail (none: the flag is left out)."""
    arguments = panel.build_request(dry_run=False).arguments()
    assert "--regression-only" not in arguments
    return [arguments[i + 1] for i, flag in enumerate(arguments) if flag == "--detail"]


def test_detail_is_a_slider_from_faithful_to_detailed_with_a_model_default(dock):
    row = dock.detail_control.slider.parentWidget().layout()
    words = [row.itemAt(i).widget() for i in range(row.count())]
    assert words.index(dock.detail_control.slider) == 1
    assert words[0].text() == "faithful" and words[2].text() == "detailed"
    assert dock.detail_control.slider.orientation() == Qt.Horizontal
    assert (dock.detail_control.slider.minimum(), dock.detail_control.slider.maximum(), dock.detail_control.slider.singleStep()) == (0, 100, 5)
    assert dock.detail_control.default_check.text() == "model default"
    field = dock.detail_control.slider.parentWidget().parentWidget()
    assert dock.detail_control.default_check.parentWidget() is field
    assert field.parentWidget().layout().labelForField(field).text() == "Detail"
    for widget in (dock.detail_control.slider, dock.detail_control.default_check, words[0], words[2]):
        assert "e2diffsr" in widget.toolTip()
    assert "regression branch" in dock.detail_control.slider.toolTip() and "texture" in dock.detail_control.slider.toolTip()
    assert not hasattr(dock, "regression_check")


def use_e2diffsr(panel: InfSceneDock, model_dir: Path) -> None:
    """An e2diffsr model (the fixture's SR3 model takes no detail: the panel turns the slider off for it)."""
    panel.engine_box.model_widget.setFilePath(str(model_dir))
    wait_until(lambda: panel._plan is not None)


def test_model_default_sends_no_detail_and_disables_the_slider(dock, e2diffsr_model_dir):
    use_e2diffsr(dock, e2diffsr_model_dir)
    assert dock.options().detail is None  # the fixture's options leave it to the model
    assert dock.detail_control.default_check.isChecked() and not dock.detail_control.slider.isEnabled()
    assert detail_sent(dock) == []

    dock.detail_control.default_check.setChecked(False)

    assert dock.detail_control.slider.isEnabled() and dock.detail_control.slider.value() == 100  # a new panel's slider: detailed
    assert dock.options().detail == 1.0 and detail_sent(dock) == ["1"]


@pytest.mark.parametrize(("position", "detail", "sent", "shown"),
                         [(0, 0.0, "0", "0.00"), (50, 0.5, "0.5", "0.50"), (100, 1.0, "1", "1.00"), (35, 0.35, "0.35", "0.35")])
def test_the_slider_sends_its_detail(dock, position, detail, sent, shown):
    dock.detail_control.default_check.setChecked(False)
    dock.detail_control.slider.setValue(position)

    assert dock.options().detail == detail
    assert detail_sent(dock) == [sent]
    assert dock.detail_control.value_label.text() == shown


def test_the_slider_keeps_to_steps_of_5(dock):
    dock.detail_control.default_check.setChecked(False)
    dock.detail_control.slider.setValue(37)  # a drag passes through every integer
    assert dock.detail_control.slider.value() == 35 and detail_sent(dock) == ["0.35"]
    dock.detail_control.slider.setValue(98)
    assert dock.detail_control.slider.value() == 100 and detail_sent(dock) == ["1"]


@pytest.mark.parametrize("detail", [None, 0.0, 0.5, 1.0])
def test_set_options_shows_the_detail(dock, e2diffsr_model_dir, detail):
    use_e2diffsr(dock, e2diffsr_model_dir)
    dock.set_options(SrOptions(detail=0.5))  # from another state, so each case changes something
    dock.set_options(SrOptions(detail=detail))

    assert dock.options().detail == detail
    assert dock.detail_control.default_check.isChecked() == (detail is None)
    assert dock.detail_control.slider.isEnabled() == (detail is not None)
    if detail is not None:
        assert dock.detail_control.slider.value() == round(detail * 100)


def test_an_old_regression_only_tick_opens_the_panel_at_faithful(qgis_iface):
    QgsSettings().setValue("infscene/regression_only", True)  # an earlier panel with the box ticked

    reopened = InfSceneDock(qgis_iface)

    assert not reopened.detail_control.default_check.isChecked() and reopened.detail_control.slider.value() == 0
    assert reopened.options().detail == 0.0
    reopened.deleteLater()


def test_an_e2diffsr_run_at_detail_0_runs_no_diffusion_steps(dock, e2diffsr_model_dir, tmp_path):
    dock.engine_box.model_widget.setFilePath(str(e2diffsr_model_dir))
    dock.set_options(SrOptions(scale=2.0, detail=0.0))

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    assert outcome.plan.steps == 0  # the regression branch alone
    assert (tmp_path / "sr.tif").is_file()
    assert result_layer().name() == "naip x2 tiny-e2diffsr detail 0 2.5 m"


@pytest.mark.parametrize(("model", "message"), [
    ("e2diffsr", "needs an e2diffsr model with a texture head"),  # the test model has none: only 0 or 1
    ("sr3", "this model is SR3"),
])
def test_a_detail_the_model_cannot_take_gets_the_engines_message(dock, qgis_iface, request, tmp_path, model, message):
    model_dir = request.getfixturevalue("e2diffsr_model_dir" if model == "e2diffsr" else "tiny_model_dir")
    dock.engine_box.model_widget.setFilePath(str(model_dir))
    dock.set_options(SrOptions(scale=2.0, detail=0.5))

    dock.run()
    wait_until(lambda: not dock.runs.busy and critical_messages(qgis_iface))

    assert any(message in text for text in critical_messages(qgis_iface))
    assert leftovers(tmp_path) == []


def test_an_e2diffsr_run_adds_its_spread_unticked_in_pseudocolour(dock, e2diffsr_model_dir, tmp_path):
    dock.engine_box.model_widget.setFilePath(str(e2diffsr_model_dir))
    dock.set_options(SrOptions(scale=2.0, samples=2))  # the model's own steps and patch

    outcome = run_to_end(dock)

    assert outcome.succeeded, outcome.error
    assert outcome.plan.steps == 4  # e2diffsr's T: no number was sent
    wait_until(lambda: dock._plan is not None)
    assert "48 x 48 px" in dock.estimate_label.text()
    group = newest_group()
    spread_node, sr_node = group.findLayers()
    spread = spread_node.layer()
    assert Path(spread.source()) == tmp_path / "sr_spread.tif" and Path(sr_node.layer().source()) == tmp_path / "sr.tif"
    assert spread.name().startswith(f"{sr_node.layer().name()} spread (2 samples, p98 ")
    assert not spread_node.itemVisibilityChecked() and sr_node.itemVisibilityChecked()
    renderer = spread.renderer()
    assert renderer.type() == "singlebandpseudocolor" and renderer.classificationMin() == 0.0
    values = gdal.Open(spread.source()).ReadAsArray()
    low, high = result_layers.value_range(QgsProject.instance().mapLayersByName("naip")[0])
    # from 0 to the spread's p98, but to no less than 2 % of the input's range (a tiny spread stays dark)
    expected_top = max(np.quantile(values, 0.98), 0.02 * (high - low))
    assert renderer.classificationMax() == pytest.approx(expected_top, rel=0.05)
    labels = [item.label for item in renderer.shader().rasterShaderFunction().colorRampItemList()]
    assert labels[0].startswith("0 DN") and f"input's {low:g}-{high:g}" in labels[-1] and "DN" in labels[2]
