"""Processing parameters built from the option table (sr_options.py), and their values read back.

Each option the table gives to Processing becomes one parameter named after it (`steps` -> STEPS), with the
table's default, range, choice labels and help; an option whose default is None ("auto") is optional, and an empty
value is that None. So the toolbox, batch processing, models and qgis_process offer what the engine takes.
"""
from __future__ import annotations

from typing import Any, Dict

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .sr_options import ADVANCED, FLOAT, INT, Option, help_text

Parameters = Dict[str, Any]


def parameter_name(option: Option) -> str:
    return option.name.upper()


def description(option: Option) -> str:
    """`Patch size in output pixels (empty: model's training size)`: the label, unit, ends, family and auto."""
    text = option.label + (f" in {option.unit}" if option.unit else "")
    if option.ends[0]:
        text += f", {option.minimum:g} {option.ends[0]} to {option.maximum:g} {option.ends[1]}"
    notes = [f"{option.family} models"] if option.family else []
    if option.default is None and option.auto:
        notes.append(f"empty: {option.auto}")
    return f"{text} ({'; '.join(notes)})" if notes else text


def parameter(option: Option) -> QgsProcessingParameterDefinition:
    """The option's Processing parameter."""
    name, text, optional = parameter_name(option), description(option), option.default is None
    if option.kind in (INT, FLOAT):
        number_type = QgsProcessingParameterNumber.Integer if option.kind == INT else QgsProcessingParameterNumber.Double
        limits = {key: value for key, value in (("minValue", option.minimum), ("maxValue", option.maximum))
                  if value is not None}
        result = QgsProcessingParameterNumber(name, text, number_type, option.form_default, optional=optional, **limits)
        if option.kind == FLOAT:
            result.setMetadata({"widget_wrapper": {"decimals": option.decimals}})
    elif option.choices:
        result = QgsProcessingParameterEnum(name, text, list(option.labels),
                                            defaultValue=option.values.index(option.form_default))
    else:
        result = QgsProcessingParameterString(name, text, defaultValue=option.form_default, optional=True)
    result.setHelp(help_text(option))
    return advanced(result) if ADVANCED in option.places else result


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """The parameter, shown under the dialog's "Advanced parameters"."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def value(algorithm: QgsProcessingAlgorithm, option: Option, parameters: Parameters,
          context: QgsProcessingContext) -> Any:
    """The option's value in `parameters`: None where an optional one is empty."""
    name = parameter_name(option)
    if option.default is None and parameters.get(name) in (None, ""):
        return None
    if option.kind == INT:
        return algorithm.parameterAsInt(parameters, name, context)
    if option.kind == FLOAT:
        return algorithm.parameterAsDouble(parameters, name, context)
    if option.choices:
        return option.values[algorithm.parameterAsEnum(parameters, name, context)]
    return algorithm.parameterAsString(parameters, name, context).strip() or option.default
