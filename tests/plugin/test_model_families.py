"""Model families in the plugin's requests and settings: the number of steps is the model's unless one is
chosen, --samples comes with the spread raster's path, --detail is sent only when chosen, an old saved
number of steps is not read back, an old "regression branch only" tick loads as detail 0, and the engine check
names the model's family."""
from __future__ import annotations

import pytest
from qgis.core import QgsSettings

from infscene_qgis import settings
from infscene_qgis.run_controller import describe_engine
from infscene_qgis.engine_request import SrOptions, SrRequest
from infscene_qgis.engine_runner import EngineRunner
from plugin_helpers import flag_values


def arguments(**options: object) -> list:
    return SrRequest("in.tif", "/out/sr.tif", SrOptions(**options)).arguments()


def test_steps_are_left_to_the_model_unless_a_number_is_chosen():
    assert SrOptions().steps is None
    assert "--steps" not in arguments()
    assert flag_values(arguments(steps=3), "--steps") == ["3"]


def test_one_sample_sends_neither_samples_nor_spread():
    assert not {"--samples", "--spread", "--detail", "--regression-only"} & set(arguments())
    assert SrRequest("in.tif", "/out/sr.tif").spread_output() is None


def test_samples_come_with_the_spread_beside_the_output_or_where_asked():
    assert flag_values(arguments(samples=3), "--samples") == ["3"]
    assert flag_values(arguments(samples=3), "--spread") == ["/out/sr_spread.tif"]
    request = SrRequest("in.tif", "/out/sr.tif", SrOptions(samples=2), spread_path="/elsewhere/s.tif")
    assert request.spread_output() == "/elsewhere/s.tif"
    assert flag_values(request.arguments(), "--spread") == ["/elsewhere/s.tif"]


def test_detail_is_left_to_the_model_unless_chosen():
    assert SrOptions().detail is None
    assert "--detail" not in arguments()


@pytest.mark.parametrize(("detail", "sent"), [(0.0, "0"), (0, "0"), (0.5, "0.5"), (0.35, "0.35"), (1.0, "1")])
def test_a_chosen_detail_is_sent_without_trailing_zeros(detail, sent):
    sent_arguments = arguments(detail=detail)
    assert flag_values(sent_arguments, "--detail") == [sent]
    assert sent_arguments.count("--detail") == 1 and "--regression-only" not in sent_arguments


def test_a_number_of_steps_saved_before_model_families_is_not_read_back(qgis_app):  # noqa: ARG001
    QgsSettings().setValue("infscene/steps", 50)  # what every earlier panel saved unless changed
    assert settings.load_options().steps is None
    settings.save_options(SrOptions(steps=7, samples=3, detail=0.25))
    assert settings.load_options() == SrOptions(steps=7, samples=3, detail=0.25)


@pytest.mark.parametrize("detail", [None, 0.0, 0.5, 1.0])
def test_detail_is_saved_and_restored(qgis_app, detail):  # noqa: ARG001
    settings.save_options(SrOptions(detail=detail))
    assert settings.load_options().detail == detail


def test_an_old_regression_only_tick_loads_as_detail_0(qgis_app):  # noqa: ARG001
    QgsSettings().setValue("infscene/regression_only", True)  # what an earlier panel saved with the box ticked
    assert settings.load_options().detail == 0.0
    assert flag_values(SrRequest("in.tif", "/out/sr.tif", settings.load_options()).arguments(), "--detail") == ["0"]


def test_an_old_unticked_regression_only_loads_as_the_models_default(qgis_app):  # noqa: ARG001
    QgsSettings().setValue("infscene/regression_only", False)
    assert settings.load_options().detail is None


def test_a_detail_saved_after_the_old_tick_wins_and_the_old_key_goes(qgis_app):  # noqa: ARG001
    QgsSettings().setValue("infscene/regression_only", True)
    settings.save_options(SrOptions(detail=None))  # the user chose "model default" since
    assert settings.load_options().detail is None
    assert not QgsSettings().contains("infscene/regression_only")


@pytest.mark.parametrize("stored", ["", "abc", "1.5", "-0.1", "nan"])
def test_an_unreadable_or_out_of_range_stored_detail_is_the_models_default(qgis_app, stored):  # noqa: ARG001
    QgsSettings().setValue("infscene/detail", stored)
    assert settings.load_options().detail is None


def test_the_engine_check_names_the_models_family(engine_python, e2diffsr_model_dir, tiny_model_dir):
    runner = EngineRunner(engine_python)
    assert "(e2diffsr, NOT trained" in describe_engine(runner.info(str(e2diffsr_model_dir)))
    assert "(sr3, NOT trained" in describe_engine(runner.info(str(tiny_model_dir)))
