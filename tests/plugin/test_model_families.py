"""Model families in the plugin's requests and settings: the number of steps is the model's unless one is
chosen, --samples comes with the spread raster's path, --regression-only passes through, an old saved
number of steps is not read back, and the engine check names the model's family."""
from __future__ import annotations

from qgis.core import QgsSettings

from infscene_qgis import settings
from infscene_qgis.dock import describe_engine
from infscene_qgis.engine_request import STEPS_MODEL_DEFAULT, SrOptions, SrRequest
from infscene_qgis.engine_runner import EngineRunner
from plugin_helpers import flag_values


def arguments(**options: object) -> list:
    return SrRequest("in.tif", "/out/sr.tif", SrOptions(**options)).arguments()


def test_steps_are_left_to_the_model_unless_a_number_is_chosen():
    assert SrOptions().steps == STEPS_MODEL_DEFAULT
    assert "--steps" not in arguments()
    assert flag_values(arguments(steps=3), "--steps") == ["3"]


def test_one_sample_sends_neither_samples_nor_spread():
    assert not {"--samples", "--spread", "--regression-only"} & set(arguments())
    assert SrRequest("in.tif", "/out/sr.tif").spread_output() is None


def test_samples_come_with_the_spread_beside_the_output_or_where_asked():
    assert flag_values(arguments(samples=3), "--samples") == ["3"]
    assert flag_values(arguments(samples=3), "--spread") == ["/out/sr_spread.tif"]
    request = SrRequest("in.tif", "/out/sr.tif", SrOptions(samples=2), spread_path="/elsewhere/s.tif")
    assert request.spread_output() == "/elsewhere/s.tif"
    assert flag_values(request.arguments(), "--spread") == ["/elsewhere/s.tif"]


def test_regression_only_passes_through():
    assert "--regression-only" in arguments(regression_only=True)


def test_a_number_of_steps_saved_before_model_families_is_not_read_back(qgis_app):  # noqa: ARG001
    QgsSettings().setValue("infscene/steps", 50)  # what every earlier panel saved unless changed
    assert settings.load_options().steps == STEPS_MODEL_DEFAULT
    settings.save_options(SrOptions(steps=7, samples=3, regression_only=True))
    assert settings.load_options() == SrOptions(steps=7, samples=3, regression_only=True)


def test_the_engine_check_names_the_models_family(engine_python, e2diffsr_model_dir, tiny_model_dir):
    runner = EngineRunner(engine_python)
    assert "(e2diffsr, NOT trained" in describe_engine(runner.info(str(e2diffsr_model_dir)))
    assert "(sr3, NOT trained" in describe_engine(runner.info(str(tiny_model_dir)))
