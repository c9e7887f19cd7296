"""The Processing algorithms run the real engine: outputs on the right grid, progress, cancel, bad input."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsProject,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
)

import processing
from infscene_qgis.protocol import MAX_STEPS
from infscene_qgis.processing_algorithms import SuperResolveAlgorithm
from plugin_helpers import NAIP, NAIP_WINDOW, TINY_RUN, RecordingFeedback, extent_parameter, flag_values, leftovers, stretches

pytestmark = pytest.mark.usefixtures("provider")


def run_sr(layer: QgsRasterLayer, output: Path, model: Path, feedback: RecordingFeedback, **extra: object) -> dict:
    parameters = {"INPUT": layer, "EXTENT": extent_parameter(NAIP_WINDOW, layer), "MODEL": str(model),
                  "OUTPUT": str(output), **TINY_RUN, **extra}
    return processing.run("infscene:superresolve", parameters, feedback=feedback)


def test_superresolve_writes_the_window_at_twice_the_resolution(naip_layer, tiny_model_dir, tmp_path):
    feedback = RecordingFeedback()
    result = run_sr(naip_layer, tmp_path / "sr.tif", tiny_model_dir, feedback)

    out = gdal.Open(result["OUTPUT"])
    assert (out.RasterXSize, out.RasterYSize, out.RasterCount) == (48, 48, 4)
    # The 24 x 24 window's top-left corner, at 2.5 m instead of 5 m, in the input's CRS.
    assert out.GetGeoTransform() == pytest.approx((487400.0, 2.5, 0.0, 5207745.0, 0.0, -2.5))
    assert out.GetSpatialRef().GetAuthorityCode(None) == "26914"
    assert result["ICEPLANT"] is None
    assert feedback.values and feedback.values[-1] == pytest.approx(100.0)
    assert feedback.values == sorted(feedback.values)


def test_target_pixel_size_overrides_the_scale(naip_layer, tiny_model_dir, tmp_path):
    result = run_sr(naip_layer, tmp_path / "sr.tif", tiny_model_dir, RecordingFeedback(), TARGET_RES=2.0)

    out = gdal.Open(result["OUTPUT"])
    assert (out.RasterXSize, out.RasterYSize) == (60, 60)
    assert out.GetGeoTransform()[1] == pytest.approx(2.0)


def test_cancel_stops_the_engine_and_leaves_no_file(naip_layer, tiny_model_dir, tmp_path):
    feedback = RecordingFeedback(cancel_after_progress=True)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        # the longest chain, so the run cannot finish before the cancel reaches it on a fast machine
        run_sr(naip_layer, tmp_path / "sr.tif", tiny_model_dir, feedback, STEPS=MAX_STEPS)

    assert 0 < feedback.values[-1] < 100
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("extent", "message"),
    [
        ("0,10,0,10 [EPSG:26914]", "outside the raster"),
        ("487400,487400,5207625,5207745 [EPSG:26914]", "empty extent"),
    ],
)
def test_bad_extent_gets_the_engines_message(naip_layer, tiny_model_dir, tmp_path, extent, message):
    with pytest.raises(QgsProcessingException, match=message):
        run_sr(naip_layer, tmp_path / "sr.tif", tiny_model_dir, RecordingFeedback(), EXTENT=extent)
    assert leftovers(tmp_path) == []


def test_web_layer_is_refused_with_advice(qgis_new_project, tiny_model_dir, tmp_path):
    web = QgsRasterLayer("type=xyz&url=https://tile.openstreetmap.org/{z}/{x}/{y}.png&zmax=19&zmin=0", "osm", "wms")
    assert web.isValid()
    with pytest.raises(QgsProcessingException, match="not from a file.*save it as a GeoTIFF"):
        processing.run("infscene:superresolve",
                       {"INPUT": web, "MODEL": str(tiny_model_dir), "OUTPUT": str(tmp_path / "sr.tif"), **TINY_RUN})


def test_in_memory_gdal_layer_is_refused(qgis_new_project, tiny_model_dir, tmp_path):
    gdal.Translate("/vsimem/naip.tif", str(NAIP))
    try:
        layer = QgsRasterLayer("/vsimem/naip.tif", "in memory", "gdal")
        assert layer.isValid()
        with pytest.raises(QgsProcessingException, match="not a file on disk"):
            processing.run("infscene:superresolve",
                           {"INPUT": layer, "MODEL": str(tiny_model_dir), "OUTPUT": str(tmp_path / "sr.tif"),
                            **TINY_RUN})
    finally:
        gdal.Unlink("/vsimem/naip.tif")


def test_file_the_engine_cannot_read_gets_its_message(qgis_new_project, tiny_model_dir, tmp_path):
    broken = tmp_path / "in" / "scene.tif"
    broken.parent.mkdir()
    broken.write_bytes(NAIP.read_bytes())
    layer = QgsRasterLayer(str(broken), "scene", "gdal")
    assert layer.isValid()
    broken.write_bytes(b"not a raster any more")  # replaced on disk after QGIS loaded it
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QgsProcessingException, match="scene.tif"):
        processing.run("infscene:superresolve",
                       {"INPUT": layer, "MODEL": str(tiny_model_dir), "OUTPUT": str(out / "sr.tif"), **TINY_RUN})
    assert leftovers(out) == []


def test_rotated_grid_gets_the_engines_message(qgis_new_project, tiny_model_dir, tmp_path):
    layer = QgsRasterLayer(str(NAIP.with_name("rotated.tif")), "rotated", "gdal")
    assert layer.isValid()
    with pytest.raises(QgsProcessingException, match="rotated"):
        processing.run("infscene:superresolve",
                       {"INPUT": layer, "MODEL": str(tiny_model_dir), "OUTPUT": str(tmp_path / "sr.tif"), **TINY_RUN})
    assert leftovers(tmp_path) == []


def test_superresolve_with_iceplant_probability(iceplant_engine, naip_layer, tiny_model_dir, tmp_path):
    result = run_sr(naip_layer, tmp_path / "sr.tif", tiny_model_dir, RecordingFeedback(),
                    ICEPLANT=str(tmp_path / "iceplant.tif"))

    probability = gdal.Open(result["ICEPLANT"])
    assert probability.RasterCount == 1
    assert probability.GetSpatialRef().GetAuthorityCode(None) == "26914"


def loaded_layer(path: Path) -> QgsRasterLayer:
    [layer] = [lyr for lyr in QgsProject.instance().mapLayers().values() if Path(lyr.source()) == path]
    return layer


def test_results_loaded_from_the_toolbox_are_styled_as_the_panel_styles_them(iceplant_engine, naip_layer, tiny_model_dir, tmp_path):
    drawn = stretches(naip_layer)
    parameters = {"INPUT": naip_layer, "EXTENT": extent_parameter(NAIP_WINDOW, naip_layer), "MODEL": str(tiny_model_dir),
                  "OUTPUT": str(tmp_path / "sr.tif"), "ICEPLANT": str(tmp_path / "iceplant.tif"), **TINY_RUN}

    processing.runAndLoadResults("infscene:superresolve", parameters)

    sr = loaded_layer(tmp_path / "sr.tif")
    assert stretches(sr) == drawn
    assert sr.renderer().minMaxOrigin().limits() == QgsRasterMinMaxOrigin.None_
    probability = loaded_layer(tmp_path / "iceplant.tif").renderer()
    assert probability.type() == "singlebandpseudocolor"
    assert (probability.classificationMin(), probability.classificationMax()) == (0.0, 1.0)


def test_iceplant_probability_on_the_input_grid(iceplant_engine, naip_layer, tmp_path):
    result = processing.run("infscene:iceplant", {"INPUT": naip_layer, "OUTPUT": str(tmp_path / "iceplant.tif")})

    probability = gdal.Open(result["OUTPUT"])
    assert (probability.RasterXSize, probability.RasterYSize, probability.RasterCount) == (64, 64, 1)
    assert probability.GetGeoTransform() == pytest.approx(gdal.Open(str(NAIP)).GetGeoTransform())
    band = probability.GetRasterBand(1).ReadAsArray()
    assert 0.0 <= np.nanmin(band) and np.nanmax(band) <= 1.0


def test_an_output_that_is_the_input_fails_and_the_input_is_kept(tiny_model_dir, tmp_path):
    """Issue 11, defect 1: `qgis_process ... INPUT=x.tif OUTPUT=x.tif` overwrote x.tif and reported done."""
    scene = tmp_path / "scene.tif"
    scene.write_bytes(NAIP.read_bytes())
    layer = QgsRasterLayer(str(scene), "scene")
    with pytest.raises(QgsProcessingException, match="would overwrite the input"):
        run_sr(layer, scene, tiny_model_dir, RecordingFeedback())
    assert scene.read_bytes() == NAIP.read_bytes() and leftovers(tmp_path) == ["scene.tif"]


def engine_arguments(monkeypatch, layer: QgsRasterLayer, tmp_path: Path, **parameters: object) -> List[str]:
    """The command line the algorithm builds, with the engine call replaced by a recorder."""
    calls: List[List[str]] = []
    monkeypatch.setattr(SuperResolveAlgorithm, "_run_engine", lambda _alg, arguments, _feedback: calls.append(list(arguments)))
    processing.run("infscene:superresolve", {"INPUT": layer, "SCALE": 2.0, "OUTPUT": str(tmp_path / "sr.tif"), **parameters})
    [arguments] = calls
    return arguments


def test_steps_are_the_models_unless_a_number_is_given(monkeypatch, naip_layer, tmp_path):
    assert "--steps" not in engine_arguments(monkeypatch, naip_layer, tmp_path)
    assert "--steps" not in engine_arguments(monkeypatch, naip_layer, tmp_path, STEPS=0)
    assert flag_values(engine_arguments(monkeypatch, naip_layer, tmp_path, STEPS=3), "--steps") == ["3"]


@pytest.mark.parametrize(("name", "flag", "old"), [("PATCH", "--patch", 0), ("OVERLAP", "--overlap", -1),
                                                   ("TARGET_RES", "--target-res", 0.0), ("STEPS", "--steps", None)])
def test_auto_is_empty_and_the_old_numbers_for_it_still_mean_auto(monkeypatch, naip_layer, tmp_path, name, flag, old):
    """Empty is the engine's own choice; saved models and scripts from before the option table send 0 or -1."""
    assert flag not in engine_arguments(monkeypatch, naip_layer, tmp_path, **{name: old})
    assert flag not in engine_arguments(monkeypatch, naip_layer, tmp_path, **{name: None})


def test_samples_and_spread_pass_through(monkeypatch, naip_layer, tmp_path):
    assert not {"--samples", "--spread"} & set(engine_arguments(monkeypatch, naip_layer, tmp_path))

    arguments = engine_arguments(monkeypatch, naip_layer, tmp_path, SAMPLES=3, SPREAD=str(tmp_path / "s.tif"))

    assert flag_values(arguments, "--samples") == ["3"] and flag_values(arguments, "--spread") == [str(tmp_path / "s.tif")]
    beside = engine_arguments(monkeypatch, naip_layer, tmp_path, SAMPLES=2)
    assert flag_values(beside, "--spread") == [str(tmp_path / "sr_spread.tif")]


def detail_sent(monkeypatch, layer: QgsRasterLayer, tmp_path: Path, **parameters: object) -> List[str]:
    arguments = engine_arguments(monkeypatch, layer, tmp_path, **parameters)
    assert "--regression-only" not in arguments
    return [arguments[i + 1] for i, flag in enumerate(arguments) if flag == "--detail"]


def test_detail_is_left_to_the_model_when_empty(monkeypatch, naip_layer, tmp_path):
    assert detail_sent(monkeypatch, naip_layer, tmp_path) == []
    assert detail_sent(monkeypatch, naip_layer, tmp_path, DETAIL=None) == []
    assert detail_sent(monkeypatch, naip_layer, tmp_path, DETAIL="") == []


@pytest.mark.parametrize(("detail", "sent"), [(0, "0"), (0.0, "0"), (0.5, "0.5"), ("0.25", "0.25"), (1.0, "1")])
def test_detail_passes_through(monkeypatch, naip_layer, tmp_path, detail, sent):
    assert detail_sent(monkeypatch, naip_layer, tmp_path, DETAIL=detail) == [sent]


@pytest.mark.parametrize("detail", [-0.1, 1.5])
def test_a_detail_outside_0_to_1_is_refused_before_the_engine(monkeypatch, naip_layer, tmp_path, detail):
    with pytest.raises(QgsProcessingException):
        engine_arguments(monkeypatch, naip_layer, tmp_path, DETAIL=detail)


def test_detail_is_an_optional_advanced_number_from_0_to_1(provider):  # noqa: ARG001
    algorithm = QgsApplication.processingRegistry().algorithmById("infscene:superresolve")
    detail = algorithm.parameterDefinition("DETAIL")
    assert detail.type() == "number" and detail.dataType() == QgsProcessingParameterNumber.Double
    assert (detail.minimum(), detail.maximum(), detail.defaultValue()) == (0.0, 1.0, None)
    assert detail.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert detail.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    assert "faithful" in detail.description() and "detailed" in detail.description()
    assert "e2diffsr" in detail.help() and "default" in detail.help()
    old = algorithm.parameterDefinition("REGRESSION_ONLY")  # kept hidden for saved models and scripts
    assert old.flags() & QgsProcessingParameterDefinition.FlagHidden


def test_the_old_regression_only_parameter_is_detail_0(monkeypatch, naip_layer, tmp_path):
    assert detail_sent(monkeypatch, naip_layer, tmp_path, REGRESSION_ONLY=True) == ["0"]
    assert detail_sent(monkeypatch, naip_layer, tmp_path, REGRESSION_ONLY=True, DETAIL=0) == ["0"]
    assert detail_sent(monkeypatch, naip_layer, tmp_path, REGRESSION_ONLY=False, DETAIL=0.5) == ["0.5"]
    with pytest.raises(QgsProcessingException, match="REGRESSION_ONLY is DETAIL 0"):
        engine_arguments(monkeypatch, naip_layer, tmp_path, REGRESSION_ONLY=True, DETAIL=0.5)


def test_a_spread_output_with_one_sample_is_refused(naip_layer, tmp_path):
    with pytest.raises(QgsProcessingException, match="2 or more samples"):
        processing.run("infscene:superresolve", {"INPUT": naip_layer, "SCALE": 2.0, "OUTPUT": str(tmp_path / "sr.tif"),
                                                 "SPREAD": str(tmp_path / "spread.tif")})
    assert leftovers(tmp_path) == []


def test_the_spread_output_of_an_e2diffsr_run_is_written_and_styled_when_loaded(naip_layer, e2diffsr_model_dir, tmp_path):
    parameters = {"INPUT": naip_layer, "EXTENT": extent_parameter(NAIP_WINDOW, naip_layer), "SCALE": 2.0,
                  "MODEL": str(e2diffsr_model_dir), "SAMPLES": 2, "OUTPUT": str(tmp_path / "sr.tif"),
                  "SPREAD": str(tmp_path / "spread.tif")}

    result = processing.runAndLoadResults("infscene:superresolve", parameters)

    assert result["SPREAD"] == str(tmp_path / "spread.tif")
    spread = gdal.Open(result["SPREAD"])
    assert (spread.RasterXSize, spread.RasterYSize, spread.RasterCount) == (48, 48, 1)
    assert spread.GetRasterBand(1).DataType == gdal.GDT_Float32
    layer = loaded_layer(tmp_path / "spread.tif")
    assert layer.name().startswith("sr spread (2 samples, p98 ") and layer.name().endswith(" DN)")
    assert layer.renderer().type() == "singlebandpseudocolor" and layer.renderer().classificationMax() > 0.0
