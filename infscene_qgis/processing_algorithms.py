"""Processing algorithms: the same engine runs in the toolbox, batch processing, models and qgis_process.

The algorithms only translate parameters into an engine request and feedback calls; the engine
does all validation (extent outside the raster, empty extent, unreadable file...) and its
one-line messages are raised as QgsProcessingException unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from qgis.core import (
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from . import settings
from .engine_events import Event, Plan, Progress, RunWarning, format_bytes
from .protocol import dask_address_problem
from .engine_locator import EngineNotFound, find_engine_python
from .engine_request import (
    DETAIL_DETAILED,
    DETAIL_FAITHFUL,
    DEVICE_LABELS,
    DEVICES,
    MODE_LABELS,
    MODES,
    OVERLAP_AUTO,
    PATCH_AUTO,
    MAX_SAMPLES,
    MAX_STEPS,
    SCALE_MAX,
    SCALE_MIN_EXCLUSIVE,
    STEPS_MODEL_DEFAULT,
    IceplantRequest,
    SrOptions,
    SrRequest,
)
from .engine_runner import EngineCancelled, EngineError, EngineRunner
from .layer_input import InputError, raster_file_path, rectangle_bounds
from .icons import icon
from .result_layers import spread_layer_name, style_probability, style_rgb, style_spread, value_range

Parameters = Dict[str, Any]
HELP_URL = "https://github.com/infscene/infscene/blob/main/docs/plugin.md#processing-algorithms"
SCALE_DECIMALS = 2  # the scale shows as 4 or 4.5, not 4.000000


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


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """The parameter, shown under the dialog's "Advanced parameters"."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


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
        bands = QgsProcessingParameterString(
            self.BANDS,
            "Band order R,G,B[,NIR] as 1-based indices (empty: detect from band descriptions)",
            optional=True,
        )
        self.addParameter(bands)
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
        try:  # the default output lies in the panel's folder, which may not exist yet (~/InfScene)
            Path(arguments[2]).parent.mkdir(parents=True, exist_ok=True)
        except (OSError, IndexError):
            pass  # the engine says what is wrong with the folder
        try:
            runner = EngineRunner(find_engine_python())
        except EngineNotFound as exc:
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
    SCALE = "SCALE"
    TARGET_RES = "TARGET_RES"
    STEPS = "STEPS"
    PATCH = "PATCH"
    OVERLAP = "OVERLAP"
    MODE = "MODE"
    SEED = "SEED"
    DEVICE = "DEVICE"
    SAMPLES = "SAMPLES"
    DETAIL = "DETAIL"
    REGRESSION_ONLY = "REGRESSION_ONLY"  # hidden: the old name of DETAIL 0
    DASK = "DASK"
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
            "Diffusion steps 0 runs the model's own number (SR3 50, e2diffsr 4). "
            "With 2 or more samples it runs that many seeds: the output is the first, and the spread raster "
            "maps the per-pixel spread over all of them (where the model invents detail). "
            "Detail (advanced; e2diffsr models) goes from 0, faithful (the regression branch alone), to 1, detailed "
            "(the texture the model draws); empty: the model's own default. "
            "Optionally also writes an iceplant probability raster (0-1)."
        )

    def createInstance(self) -> "SuperResolveAlgorithm":
        return SuperResolveAlgorithm()

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: ARG002
        defaults = SrOptions()
        self._add_input_parameters("Super-resolution model")
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (empty: the whole layer)", optional=True))
        scale = QgsProcessingParameterNumber(
            self.SCALE, "Scale factor", QgsProcessingParameterNumber.Double, defaults.scale, minValue=SCALE_MIN_EXCLUSIVE,
            maxValue=SCALE_MAX)
        scale.setMetadata({"widget_wrapper": {"decimals": SCALE_DECIMALS}})
        self.addParameter(scale)
        self.addParameter(QgsProcessingParameterNumber(
            self.TARGET_RES, "Target pixel size in layer units (0: use the scale factor)",
            QgsProcessingParameterNumber.Double, defaults.target_res, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.STEPS, "Diffusion steps (0: the model's default, SR3 50, e2diffsr 4)", QgsProcessingParameterNumber.Integer,
            defaults.steps, optional=True, minValue=STEPS_MODEL_DEFAULT, maxValue=MAX_STEPS))
        self.addParameter(QgsProcessingParameterNumber(
            self.PATCH, "Patch size in output pixels (0: the model's training size)",
            QgsProcessingParameterNumber.Integer, defaults.patch, minValue=PATCH_AUTO, maxValue=4096))
        self.addParameter(QgsProcessingParameterNumber(
            self.OVERLAP, "Patch overlap in output pixels (-1: a quarter of the patch)",
            QgsProcessingParameterNumber.Integer, defaults.overlap, minValue=OVERLAP_AUTO, maxValue=2048))
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, "Patch fusion", list(MODE_LABELS), defaultValue=MODES.index(defaults.mode)))
        self.addParameter(QgsProcessingParameterNumber(
            self.SEED, "Random seed", QgsProcessingParameterNumber.Integer, defaults.seed, minValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.DEVICE, "Device", list(DEVICE_LABELS), defaultValue=DEVICES.index(defaults.device)))
        self.addParameter(QgsProcessingParameterNumber(
            self.SAMPLES, "Samples (seeds; 2 or more also map their spread)", QgsProcessingParameterNumber.Integer,
            defaults.samples, minValue=1, maxValue=MAX_SAMPLES))
        detail = QgsProcessingParameterNumber(
            self.DETAIL, "Detail, 0 faithful to 1 detailed (e2diffsr models; empty: the model's default)",
            QgsProcessingParameterNumber.Double, defaults.detail, optional=True,
            minValue=DETAIL_FAITHFUL, maxValue=DETAIL_DETAILED)
        detail.setHelp("For e2diffsr models only; an SR3 model refuses it. 0 (faithful): the regression branch alone, "
                       "fastest and smooth. 1 (detailed): the latent diffusion plus the texture head's full drawing. "
                       "Between: the drawn texture scaled (a model without a texture head accepts only 0 or 1). "
                       "Empty: the model's own default (its config.json default_detail).")
        self.addParameter(advanced(detail))
        # The old name of DETAIL 0, hidden: a saved model or script that still sets it runs as before.
        regression_only = QgsProcessingParameterBoolean(
            self.REGRESSION_ONLY, "Regression branch only (the old name of DETAIL 0)", defaultValue=False, optional=True)
        regression_only.setFlags(regression_only.flags() | QgsProcessingParameterDefinition.FlagHidden)
        self.addParameter(regression_only)
        dask = QgsProcessingParameterString(
            self.DASK, "Dask cluster (empty: this machine; local:N for N worker processes)", defaultValue=defaults.dask,
            optional=True)
        dask.setHelp("A Dask scheduler address (tcp://host:8786) to spread the model work over its workers, or local:N. "
                     "The output is the same; the work folder must be one every worker reaches.")
        self.addParameter(advanced(dask))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Super-resolved raster",
                                                                  defaultValue=default_output("infscene_sr")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.ICEPLANT, "Iceplant probability", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.SPREAD, "Spread over the samples (needs 2 or more samples)", optional=True, createByDefault=False))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Dict[str, Any]:
        layer = self._input(parameters, context)
        options = SrOptions(
            scale=self.parameterAsDouble(parameters, self.SCALE, context),
            target_res=self.parameterAsDouble(parameters, self.TARGET_RES, context),
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            patch=self.parameterAsInt(parameters, self.PATCH, context),
            overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            mode=MODES[self.parameterAsEnum(parameters, self.MODE, context)],
            seed=self.parameterAsInt(parameters, self.SEED, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            bands=self.parameterAsString(parameters, self.BANDS, context),
            samples=self.parameterAsInt(parameters, self.SAMPLES, context),
            detail=self._detail(parameters, context),
            dask=self.parameterAsString(parameters, self.DASK, context) or "",
        )
        problem = dask_address_problem(options.dask) if options.dask.strip() else None
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


    def _detail(self, parameters: Parameters, context: QgsProcessingContext) -> Optional[float]:
        """DETAIL, None when empty (the model's default); the old REGRESSION_ONLY is DETAIL 0."""
        detail = None
        if parameters.get(self.DETAIL) not in (None, ""):
            detail = self.parameterAsDouble(parameters, self.DETAIL, context)
        if self.parameterAsBoolean(parameters, self.REGRESSION_ONLY, context):
            if detail not in (None, DETAIL_FAITHFUL):
                raise QgsProcessingException(f"REGRESSION_ONLY is DETAIL 0; it cannot go with DETAIL {detail:g}")
            detail = DETAIL_FAITHFUL
        return detail


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
