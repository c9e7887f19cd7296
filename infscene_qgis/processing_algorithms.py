"""Processing algorithms: the same engine runs in the toolbox, batch processing, models and qgis_process.

The algorithms only translate parameters into an engine request and feedback calls; the engine
does all validation (extent outside the raster, empty extent, unreadable file...) and its
one-line messages are raised as QgsProcessingException unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from . import settings
from .engine_events import Event, Plan, Progress, RunWarning, format_bytes
from .protocol import dask_address_problem
from .engine_request import IceplantRequest, SrOptions, SrRequest
from .engine_runner import EngineCancelled, EngineError
from .layer_input import InputError, raster_file_path, rectangle_bounds
from .icons import icon
from .option_parameters import advanced, parameter, value
from .run_controller import RunRefused, prepare_engine
from .result_layers import spread_layer_name, style_probability, style_rgb, style_spread, value_range
from .sr_options import OPTION, PROCESSING, options_in

Parameters = Dict[str, Any]
HELP_URL = "https://github.com/infscene/infscene/blob/main/docs/plugin.md#processing-algorithms"


def default_output(stem: str) -> str:
    """A free `<stem>.tif` in the folder the panel writes to (its last output's, else beside the project, else
    ~/InfScene): not a temporary file that disappears with QGIS."""
    last = settings.load_text(settings.OUTPUT_PATH_KEY)
    folder = Path(last).parent if last else settings.default_output_folder()
    return str(settings.free_output_path(folder, stem))


class _OutputStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles an output as the panel does when Processing loads it into the project (main thread).

    Processing keeps only a pointer to a post-processor, so each one is held in _PENDING until it
    has run.
    """

    def __init__(self, style: Callable[[QgsRasterLayer], None]) -> None:
        super().__init__()
        self.style = style

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> None:  # noqa: N802, ARG002
        if isinstance(layer, QgsRasterLayer):
            self.style(layer)
        _PENDING.discard(self)


_PENDING: set = set()


def style_on_load(context: QgsProcessingContext, output: Optional[str], style: Callable[[QgsRasterLayer], None]) -> None:
    """Have `style` applied to `output` if this run loads it into the project (toolbox, models)."""
    if output and context.willLoadLayerOnCompletion(output):
        styler = _OutputStyler(style)
        _PENDING.add(styler)
        context.layerToLoadOnCompletionDetails(output).setPostProcessor(styler)


def input_stretch_styler(input_layer_id: str) -> Callable[[QgsRasterLayer], None]:
    """style_rgb with the stretch of the input layer, looked up when the result is loaded."""
    return lambda layer: style_rgb(layer, QgsProject.instance().mapLayer(input_layer_id))


def spread_styler(sr_path: str, samples: int, input_layer_id: str = "") -> Callable[[QgsRasterLayer], None]:
    """style_spread against the input layer's value range, and the panel's layer name (Processing would name it
    after the parameter)."""
    def style(layer: QgsRasterLayer) -> None:
        like = QgsProject.instance().mapLayer(input_layer_id) if input_layer_id else None
        scale = style_spread(layer, value_range(like) if isinstance(like, QgsRasterLayer) else None)
        layer.setName(spread_layer_name(Path(sr_path).stem, samples, scale))
    return style


# Before the option table "auto" was a number (0 steps, patch or pixel size; overlap -1); saved models and scripts
# still send those, and they still mean auto.
OLD_AUTO = {"STEPS": 0.0, "PATCH": 0.0, "OVERLAP": -1.0, "TARGET_RES": 0.0}


def without_old_auto(parameters: Parameters) -> Parameters:
    """`parameters` with the old numbers for auto made empty."""
    def old_auto(name: str, value: Any) -> bool:
        try:
            return name in OLD_AUTO and float(value) == OLD_AUTO[name]
        except (TypeError, ValueError):
            return False
    return {name: None if old_auto(name, value) else value for name, value in parameters.items()}


class _EngineAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters (input, bands, model) and the engine call with progress and cancel."""

    INPUT = "INPUT"
    BANDS = "BANDS"
    MODEL = "MODEL"

    def icon(self) -> QIcon:
        return icon()

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return HELP_URL

    def _add_input_parameters(self, model_label: str) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster (file-backed)"))
        self.addParameter(parameter(OPTION["bands"]))
        model = QgsProcessingParameterFile(
            self.MODEL, f"{model_label} folder (empty: the engine's default)",
            behavior=QgsProcessingParameterFile.Folder, optional=True,
        )
        self.addParameter(advanced(model))

    def _input(self, parameters: Parameters, context: QgsProcessingContext) -> QgsRasterLayer:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("the input raster could not be loaded")
        return layer

    def _input_path(self, layer: QgsRasterLayer) -> str:
        try:
            return raster_file_path(layer)
        except InputError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def _model(self, parameters: Parameters, context: QgsProcessingContext) -> Optional[str]:
        return self.parameterAsFile(parameters, self.MODEL, context) or None

    def _run_engine(self, arguments: Sequence[str], feedback: QgsProcessingFeedback) -> List[str]:
        """Run the engine, mirroring its events on `feedback`; engine failures become QgsProcessingException."""
        try:
            runner = prepare_engine(arguments[2])
        except RunRefused as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushCommandInfo(" ".join(runner.command(arguments)))

        def report(event: Event) -> None:
            if isinstance(event, Plan):
                feedback.pushInfo(
                    f"output {event.output_width} x {event.output_height} px, {event.patches} patches x "
                    f"{event.steps} steps, about {format_bytes(event.output_bytes)}"
                )
            elif isinstance(event, Progress):
                feedback.setProgress(100.0 * event.fraction)
            elif isinstance(event, RunWarning):
                feedback.pushWarning(event.message)

        try:
            return runner.run(arguments, report, feedback.isCanceled)
        except EngineCancelled as exc:
            raise QgsProcessingException("cancelled by the user; no output was written") from exc
        except EngineError as exc:
            raise QgsProcessingException(str(exc)) from exc


class SuperResolveAlgorithm(_EngineAlgorithm):
    """'Super-resolve raster': a diffusion SR of the layer (or an extent of it), optionally with iceplant."""

    EXTENT = "EXTENT"
    REGRESSION_ONLY = "REGRESSION_ONLY"  # hidden: the old name of DETAIL 0
    OUTPUT = "OUTPUT"
    ICEPLANT = "ICEPLANT"
    SPREAD = "SPREAD"

    def name(self) -> str:
        return "superresolve"

    def displayName(self) -> str:
        return "Super-resolve raster"

    def shortHelpString(self) -> str:
        return (
            "Super-resolves a Planet, RapidEye or NAIP raster with the InfScene diffusion model, "
            "seamlessly over any size (overlapping patches fused at every step). Runs the engine in its "
            "own Python environment; set its interpreter in the InfScene panel or INFSCENE_PYTHON. "
            "A target pixel size (in the layer's units) overrides the scale factor. "
            "An empty number of diffusion steps, patch size or overlap is the model's own. "
            "With 2 or more samples it runs that many seeds: the output is the first, and the spread raster "
            "maps the per-pixel spread over all of them (where the model invents detail). "
            "Detail (advanced; e2diffsr models) goes from 0, faithful (the regression branch alone), to 1, detailed "
            "(the texture the model draws); empty: the model's own default. "
            "Optionally also writes an iceplant probability raster (0-1)."
        )

    def createInstance(self) -> "SuperResolveAlgorithm":
        return SuperResolveAlgorithm()

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: ARG002
        self._add_input_parameters("Super-resolution model")
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (empty: the whole layer)", optional=True))
        for option in options_in(PROCESSING):
            if option.name != "bands":  # among the input parameters, which the iceplant algorithm shares
                self.addParameter(parameter(option))
        # The old name of DETAIL 0, hidden: a saved model or script that still sets it runs as before.
        regression_only = QgsProcessingParameterBoolean(
            self.REGRESSION_ONLY, "Regression branch only (the old name of DETAIL 0)", defaultValue=False, optional=True)
        regression_only.setFlags(regression_only.flags() | QgsProcessingParameterDefinition.FlagHidden)
        self.addParameter(regression_only)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Super-resolved raster",
                                                                  defaultValue=default_output("infscene_sr")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.ICEPLANT, "Iceplant probability", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.SPREAD, "Spread over the samples (needs 2 or more samples)", optional=True, createByDefault=False))

    def checkParameterValues(self, parameters: Parameters, context: QgsProcessingContext) -> Tuple[bool, str]:  # noqa: N802
        return super().checkParameterValues(without_old_auto(parameters), context)

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Dict[str, Any]:
        parameters = without_old_auto(parameters)
        layer = self._input(parameters, context)
        options = SrOptions(**{o.name: value(self, o, parameters, context) for o in options_in(PROCESSING)})
        options.detail = self._detail(options.detail, parameters, context)
        problem = dask_address_problem(options.dask) if options.dask else None
        if problem:
            raise QgsProcessingException(problem)
        bounds = None
        if parameters.get(self.EXTENT) not in (None, ""):
            bounds = rectangle_bounds(self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs()))
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        iceplant = self.parameterAsOutputLayer(parameters, self.ICEPLANT, context) or None
        asked_spread = self.parameterAsOutputLayer(parameters, self.SPREAD, context) or None
        if asked_spread is not None and options.samples <= 1:
            raise QgsProcessingException("a spread raster needs 2 or more samples: set SAMPLES or leave SPREAD empty")
        request = SrRequest(
            input_path=self._input_path(layer),
            output_path=output,
            options=options,
            bounds=bounds,
            iceplant_path=iceplant,
            model_dir=self._model(parameters, context),
            spread_path=asked_spread,
        )
        self._run_engine(request.arguments(), feedback)
        spread = request.spread_output()
        if spread is not None:
            feedback.pushInfo(f"spread over {options.samples} samples: {spread}")
        style_on_load(context, output, input_stretch_styler(layer.id()))
        style_on_load(context, iceplant, style_probability)
        style_on_load(context, spread, spread_styler(output, options.samples, layer.id()))
        return {self.OUTPUT: output, self.ICEPLANT: iceplant, self.SPREAD: spread}

    def _detail(self, detail: Optional[float], parameters: Parameters, context: QgsProcessingContext) -> Optional[float]:
        """DETAIL, or the old REGRESSION_ONLY, which is DETAIL 0."""
        if not self.parameterAsBoolean(parameters, self.REGRESSION_ONLY, context):
            return detail
        faithful = OPTION["detail"].minimum
        if detail not in (None, faithful):
            raise QgsProcessingException(f"REGRESSION_ONLY is DETAIL 0; it cannot go with DETAIL {detail:g}")
        return faithful


class IceplantAlgorithm(_EngineAlgorithm):
    """'Iceplant probability': a 0-1 probability raster of iceplant cover on the layer's grid."""

    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "iceplant"

    def displayName(self) -> str:
        return "Iceplant probability"

    def shortHelpString(self) -> str:
        return (
            "Writes a single-band raster of iceplant probability (0-1) on the input's grid, using the "
            "InfScene iceplant model in the engine's own Python environment."
        )

    def createInstance(self) -> "IceplantAlgorithm":
        return IceplantAlgorithm()

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: ARG002
        self._add_input_parameters("Iceplant model")
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Iceplant probability",
                                                                  defaultValue=default_output("infscene_iceplant")))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Dict[str, Any]:
        layer = self._input(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        request = IceplantRequest(
            input_path=self._input_path(layer),
            output_path=output,
            bands=self.parameterAsString(parameters, self.BANDS, context),
            model_dir=self._model(parameters, context),
        )
        self._run_engine(request.arguments(), feedback)
        style_on_load(context, output, style_probability)
        return {self.OUTPUT: output}
