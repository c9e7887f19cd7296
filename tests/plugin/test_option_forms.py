"""The plugin's forms are built from the option table (sr_options.py, the engine's own): the panel has a widget for
every option the table gives it, with the table's label, help, default, range, choices and unit; the Processing
algorithm a parameter for every option it gives Processing, the same way; SrOptions has exactly those options;
every value a form can hold goes out as the table's flag and comes back from the settings; and a form offers no
value the engine refuses. (tests/test_sr_options.py walks the same table against the command line.)"""
from __future__ import annotations

import dataclasses

import pytest
from qgis.core import QgsApplication, QgsProcessingParameterDefinition, QgsProcessingParameterNumber
from qgis.PyQt.QtWidgets import QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from infscene_qgis import settings
from infscene_qgis.detail_control import DETAIL_SLIDER_MAX, DETAIL_SLIDER_STEP
from infscene_qgis.dock import InfSceneDock
from infscene_qgis.engine_request import SrOptions, SrRequest
from infscene_qgis.option_parameters import description
from infscene_qgis.sr_options import ADVANCED, DOCK, FLOAT, INT, OPTION, PROCESSING, Option, help_text, options_in, plugin_options
from plugin_helpers import flag_values

DOCK_OPTIONS = [o for o in options_in(DOCK) if o.name != "detail"]  # the detail is a slider: checked on its own
PROCESSING_OPTIONS = list(options_in(PROCESSING))


@pytest.fixture()
def panel(qgis_iface):
    dock = InfSceneDock(qgis_iface)
    yield dock
    dock.deleteLater()


def chosen_value(option: Option):
    """A value other than the default that the option takes (the largest of a range, the last choice)."""
    if option.choices:
        return option.values[-1]
    if option.kind in (INT, FLOAT):
        return option.maximum if option.maximum is not None else option.minimum + 7
    return "3,2,1,4" if option.name == "bands" else "local:2"


def test_srOptions_has_exactly_the_forms_options_with_the_tables_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(SrOptions)}
    assert fields == {o.name: o.form_default for o in plugin_options()}


@pytest.mark.parametrize("option", DOCK_OPTIONS, ids=[o.name for o in DOCK_OPTIONS])
def test_the_panel_has_the_tables_widget(panel, option: Option):
    widget = panel.fields[option.name]
    form = widget.parentWidget().layout()
    assert form.labelForField(widget).text() == option.label
    assert help_text(option).lower() in widget.toolTip().lower()
    widget.set_option_value(option.form_default)
    assert widget.option_value() == option.form_default
    if option.default is None and option.auto:  # auto shows the table's words, and is None
        widget.set_option_value(None)
        assert widget.option_value() is None
        assert (widget.text() if isinstance(widget, (QSpinBox, QDoubleSpinBox)) else widget.placeholderText()) == option.auto
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        assert widget.suffix() == option.suffix or option.name == "target_res"  # that one shows the layer's units
        tick = 1 if option.kind == INT else 10.0 ** -widget.decimals()
        lowest = widget.minimum() + (tick if option.default is None and option.initial is None else 0)  # past auto
        assert option.problem(lowest) is None and option.problem(widget.maximum()) is None
        assert option.problem(lowest - tick) is not None
        assert option.maximum is None or widget.maximum() == option.maximum
    elif isinstance(widget, QComboBox):
        assert [widget.itemText(i) for i in range(widget.count())] == list(option.labels)
    else:
        assert isinstance(widget, QLineEdit)


def test_the_panel_shows_every_dock_option_and_no_other(panel):
    assert set(panel.fields) | {"detail"} == {o.name for o in options_in(DOCK)}


def test_the_detail_slider_is_the_tables_range_steps_ends_and_help(panel):
    detail = OPTION["detail"]
    assert (panel.detail_control.slider.minimum(), panel.detail_control.slider.maximum()) == (0, DETAIL_SLIDER_MAX)
    assert DETAIL_SLIDER_STEP / DETAIL_SLIDER_MAX == pytest.approx(detail.step)
    row = panel.detail_control.slider.parentWidget().layout()
    assert (row.itemAt(0).widget().text(), row.itemAt(2).widget().text()) == detail.ends
    assert panel.detail_control.slider.toolTip() == help_text(detail)
    assert panel.detail_control.default_check.text() == detail.auto


@pytest.mark.parametrize("option", PROCESSING_OPTIONS, ids=[o.name for o in PROCESSING_OPTIONS])
def test_the_processing_parameter_is_the_tables(provider, option: Option):  # noqa: ARG001
    algorithm = QgsApplication.processingRegistry().algorithmById("infscene:superresolve")
    parameter = algorithm.parameterDefinition(option.name.upper())
    assert parameter is not None, option.name
    assert parameter.description() == description(option) and parameter.help() == help_text(option)
    assert bool(parameter.flags() & QgsProcessingParameterDefinition.FlagOptional) == (option.default is None)
    assert bool(parameter.flags() & QgsProcessingParameterDefinition.FlagAdvanced) == (ADVANCED in option.places)
    if option.choices:
        assert parameter.options() == list(option.labels)
        assert parameter.defaultValue() == option.values.index(option.form_default)
    elif option.kind in (INT, FLOAT):
        kind = QgsProcessingParameterNumber.Integer if option.kind == INT else QgsProcessingParameterNumber.Double
        assert parameter.dataType() == kind and parameter.defaultValue() == option.form_default
        assert parameter.minimum() == option.minimum
        if option.maximum is not None:
            assert parameter.maximum() == option.maximum
    else:
        assert parameter.defaultValue() == option.form_default


@pytest.mark.parametrize("option", plugin_options(), ids=[o.name for o in plugin_options()])
def test_a_chosen_value_goes_out_as_the_tables_flag_and_the_default_as_nothing(option: Option):
    value = chosen_value(option)
    arguments = SrRequest("in.tif", "/out/sr.tif", SrOptions(**{option.name: value})).arguments()
    assert flag_values(arguments, option.flag) == [str(int(value)) if isinstance(value, float) and value.is_integer()
                                                   else str(value)]
    if not option.group:
        assert option.flag not in SrRequest("in.tif", "/out/sr.tif").arguments()


@pytest.mark.parametrize("option", plugin_options(), ids=[o.name for o in plugin_options()])
def test_every_option_is_saved_and_restored_and_auto_stays_auto(qgis_app, option: Option):  # noqa: ARG001
    settings.save_options(SrOptions(**{option.name: chosen_value(option)}))
    assert getattr(settings.load_options(), option.name) == chosen_value(option)
    settings.save_options(SrOptions())
    assert settings.load_options() == SrOptions()


@pytest.mark.parametrize(("key", "old"), [("steps_or_model_default", 0), ("patch", 0), ("overlap", -1),
                                          ("target_res", 0.0), ("dask", ""), ("bands", ""), ("mode", "seamless")])
def test_a_value_saved_with_an_old_meaning_reads_as_the_default(qgis_app, key, old):  # noqa: ARG001
    from qgis.core import QgsSettings

    QgsSettings().setValue(f"infscene/{key}", old)  # the sentinels earlier panels saved for "auto"
    assert settings.load_options() == SrOptions()
