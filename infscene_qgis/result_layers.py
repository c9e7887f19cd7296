"""Adds finished outputs to the project, styled and grouped. Main thread only (QgsTask.finished)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from osgeo import gdal
from qgis.core import (
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsRasterBandStats,
    QgsRectangle,
    QgsUnitTypes,
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRaster,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)

from .protocol import SOURCE_BAND_TAG  # the engine's per-band tag: the 1-based input band

_ROLES = {"red": QgsRaster.RedBand, "green": QgsRaster.GreenBand, "blue": QgsRaster.BlueBand}
# The spread is drawn from 0 up to this fraction of its pixels, so a few extreme pixels (nodata edges,
# a single wild sample) do not wash the map out...
SPREAD_UPPER_CUT = 0.98
# ...but never brighter than its size deserves: the ramp reaches full brightness at this share of the input's value
# range at the least, so a spread of 0.08 DN on a 0-234 scale stays dark instead of looking like a strong signal.
SPREAD_MIN_SHARE = 0.02
NAME_LIMIT = 24  # characters of a layer's name kept in a result's name (long scene stems are cut in the middle)
STATS_SAMPLE = 250_000
RESULT_PROPERTY = "infscene/result"  # a custom property on every layer the plugin adds (the panel's input skips them)  # pixels QGIS samples for a value range


class LayerLoadError(Exception):
    """An output file exists but QGIS cannot open it."""


def load_raster(path: str, name: Optional[str] = None) -> QgsRasterLayer:
    """Open an output file as a layer, or raise LayerLoadError naming the file."""
    layer = QgsRasterLayer(path, name or Path(path).stem, "gdal")
    if not layer.isValid():
        raise LayerLoadError(f"QGIS cannot open the output {path}")
    return layer


def rgb_bands(layer: QgsRasterLayer) -> Tuple[int, int, int]:
    """Red, green and blue band numbers of a raster, from its tags (bands 1-3 when untagged).

    The engine keeps the input's band order and tags the bands it super-resolved as red, green
    and blue, so its outputs always say which band is which (Planet analytic B,G,R,NIR too).
    """
    provider = layer.dataProvider()
    found: Dict[str, int] = {}
    for band in range(1, layer.bandCount() + 1):
        name = layer.bandName(band).lower()  # "Band 3: Red" when the band has a description
        for role, interp in _ROLES.items():
            tagged = provider.colorInterpretation(band) == interp or name.endswith(f": {role}")
            if tagged and role not in found:
                found[role] = band
    if len(found) == 3 and len(set(found.values())) == 3:
        return found["red"], found["green"], found["blue"]
    return 1, 2, 3


def source_bands(path: str) -> Dict[int, int]:
    """Output band -> the input band it was made from, as the engine tags it (empty when untagged)."""
    dataset = gdal.Open(path)
    if dataset is None:
        return {}
    found = {}
    for band in range(1, dataset.RasterCount + 1):
        value = dataset.GetRasterBand(band).GetMetadataItem(SOURCE_BAND_TAG)
        if value and value.isdigit():
            found[band] = int(value)
    return found


def drawn_stretches(layer: QgsRasterLayer) -> Dict[int, QgsContrastEnhancement]:
    """The min/max stretch the layer is drawn with now, per band, for a true- or false-colour renderer."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsMultiBandColorRenderer):
        return {}
    pairs = (
        (renderer.redBand(), renderer.redContrastEnhancement()),
        (renderer.greenBand(), renderer.greenContrastEnhancement()),
        (renderer.blueBand(), renderer.blueContrastEnhancement()),
    )
    return {band: stretch for band, stretch in pairs if band > 0 and stretch is not None}


def fixed_origin() -> QgsRasterMinMaxOrigin:
    """User-defined limits: QGIS never recomputes them from the layer's own statistics."""
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)
    return origin


def style_rgb(layer: QgsRasterLayer, like: Optional[QgsRasterLayer] = None) -> None:
    """True-colour rendering of an SR output.

    With `like` (the input layer), each output band is drawn with the stretch its source band has
    in that layer now, fixed, so the result and the input look alike side by side and differences
    are in the data, not in two stretches computed from different pixels. Without it (or when the
    input is not drawn with a multiband renderer), each band gets its own cumulative-cut stretch,
    so uint16 Planet data is not rendered black.
    """
    if layer.bandCount() < 3:
        return
    alpha = layer.renderer().alphaBand() if layer.renderer() is not None else -1
    bands = rgb_bands(layer)
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *bands)
    renderer.setAlphaBand(alpha)
    stretches = drawn_stretches(like) if like is not None else {}
    origins = source_bands(layer.source())
    matched = [stretches.get(origins.get(band, -1)) for band in bands]
    if all(stretch is not None for stretch in matched):
        red, green, blue = (QgsContrastEnhancement(stretch) for stretch in matched)
        renderer.setRedContrastEnhancement(red)
        renderer.setGreenContrastEnhancement(green)
        renderer.setBlueContrastEnhancement(blue)
        renderer.setMinMaxOrigin(fixed_origin())
        layer.setRenderer(renderer)
        return
    layer.setRenderer(renderer)
    layer.setContrastEnhancement(
        QgsContrastEnhancement.StretchToMinimumMaximum,
        QgsRasterMinMaxOrigin.CumulativeCut,
    )


def style_pseudocolor(layer: QgsRasterLayer, ramp_name: str, low: float, high: float,
                      labels: Optional[Callable[[List[float]], List[str]]] = None) -> None:
    """Band 1 drawn with a named colour ramp from `low` to `high` (fixed: never recomputed by QGIS); `labels` turns
    the legend's values into its labels.

    The layer tree draws an interpolated ramp as one continuous bar labelled with its two ends' bare numbers (the
    items' labels only show in the layer's properties), so the first and last labels go on the bar's ends too."""
    ramp = QgsStyle.defaultStyle().colorRamp(ramp_name)
    shader_function = QgsColorRampShader(low, high, ramp, QgsColorRampShader.Interpolated)
    shader_function.classifyColorRamp(5, -1)
    if labels is not None:
        items = shader_function.colorRampItemList()
        for item, label in zip(items, labels([item.value for item in items])):
            item.label = label
        shader_function.setColorRampItemList(items)
        legend = QgsColorRampLegendNodeSettings()
        legend.setMinimumLabel(items[0].label)
        legend.setMaximumLabel(items[-1].label)
        shader_function.setLegendSettings(legend)
    shader = QgsRasterShader(low, high)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)


def style_probability(layer: QgsRasterLayer) -> None:
    """Fixed 0-1 pseudocolour so probabilities look the same on every scene (no per-scene stretch)."""
    style_pseudocolor(layer, "Viridis", 0.0, 1.0)


def value_range(layer: QgsRasterLayer, band: int = 1) -> Tuple[float, float]:
    """Smallest and largest value of a band (QGIS's sampled statistics)."""
    stats = layer.dataProvider().bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max, QgsRectangle(),
                                                STATS_SAMPLE)
    return float(stats.minimumValue), float(stats.maximumValue)


@dataclass(frozen=True)
class SpreadScale:
    """How a spread layer is drawn: its real p98 and maximum, the input's range, and the ramp's top (all in DN)."""

    p98: float
    maximum: float
    input_low: float
    input_high: float

    @property
    def top(self) -> float:
        span = max(self.input_high - self.input_low, 0.0)
        top = max(self.p98, SPREAD_MIN_SHARE * span)
        return top if top > 0 else 1.0

    def labels(self, values: List[float]) -> List[str]:
        """Legend labels for the ramp's values: DN, and what the top means against the input's range."""
        labels = [f"{v:.3g} DN" for v in values]
        labels[0] = "0 DN: every sample agrees"
        labels[-1] = (f"{self.top:.3g} DN and more ({100 * self.top / max(self.input_high - self.input_low, 1e-9):.2g} % "
                      f"of the input's {self.input_low:g}-{self.input_high:g})")  # the layer's name says its p98 and max
        return labels


def spread_scale(layer: QgsRasterLayer, input_range: Optional[Tuple[float, float]] = None) -> SpreadScale:
    _, p98 = layer.dataProvider().cumulativeCut(1, 0.0, SPREAD_UPPER_CUT)
    _, maximum = value_range(layer)
    low, high = input_range if input_range is not None else (0.0, 255.0)
    return SpreadScale(max(p98, 0.0), max(maximum, 0.0), low, high)


def style_spread(layer: QgsRasterLayer, input_range: Optional[Tuple[float, float]] = None) -> SpreadScale:
    """The per-pixel spread of several samples (std, in the input's DN) from 0 (dark: every sample agrees) to its
    98th percentile, but to no less than 2 % of the input's value range: a spread that is tiny next to the input
    stays dark. The legend says the real values in DN against the input's range. A spread that is 0 everywhere
    (the regression branch alone is deterministic) still gets a valid ramp."""
    scale = spread_scale(layer, input_range)
    style_pseudocolor(layer, "Magma", 0.0, scale.top, scale.labels)
    return scale


def spread_layer_name(sr_name: str, samples: int, scale: Optional[SpreadScale] = None) -> str:
    """`<result> spread (N samples, p98 0.08, max 0.9 DN)`: the size on the name, so an unticked layer already says
    it (and the legend's bar, which QGIS sizes a little short for a long label, keeps to the ramp's ends)."""
    size = f", p98 {scale.p98:.2g}, max {scale.maximum:.2g} DN" if scale is not None else ""
    return f"{sr_name} spread ({samples} samples{size})"


def short_name(name: str, limit: int = NAME_LIMIT) -> str:
    """A layer name cut in the middle when long (`SN7_global_mo…_clipped`), so result names stay readable."""
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return f"{name[:half]}…{name[-(limit - 1 - half):]}"


def result_name(input_name: str, scale: float, model: str, pixel_size: Optional[float], units: str,
                detail: Optional[float] = None, seed: Optional[int] = None) -> str:
    """`<layer> x4 e2diffsr detail 0.7 1.19 m`: the input's short name, the scale, the model, the detail the run used
    (for a model that takes one), the seed where it is not the default, and the output's pixel size: runs of one
    layer that differ in any of these differ in name."""
    parts = [short_name(input_name), f"x{scale:.3g}"]
    if model:
        parts.append(model)
    if detail is not None:
        parts.append(f"detail {detail:.2g}")
    if seed:
        parts.append(f"seed {seed}")
    if pixel_size is not None:
        parts.append(f"{pixel_size:.3g} {units}")
    return " ".join(parts)


def pixel_size_units(layer: QgsRasterLayer) -> Tuple[float, str]:
    """A raster's pixel size and its unit's abbreviation (`px` without a CRS)."""
    crs = layer.crs()
    units = QgsUnitTypes.toAbbreviatedString(crs.mapUnits()) if crs.isValid() else "px"
    return layer.rasterUnitsPerPixelX(), units or "px"


def load_styled(path: str, name: str, style: Callable[[QgsRasterLayer], None]) -> QgsRasterLayer:
    layer = load_raster(path, name)
    style(layer)
    return layer


def add_group(
    group_name: str,
    sr_path: Optional[str],
    probability_path: Optional[str] = None,
    like: Optional[QgsRasterLayer] = None,
    spread_path: Optional[str] = None,
    samples: int = 1,
    sr_name: Optional[str] = None,
) -> List[QgsRasterLayer]:
    """Add the SR raster (named `sr_name`, default its file's stem), the spread of its `samples` above it and the
    probability on top to a new group at the top of the layer tree; any of them may be missing (a run that failed
    after writing some of its files adds what it wrote).

    `like` is the input layer, whose stretch the SR raster is drawn with (see style_rgb). The spread
    is added unticked: it is opaque, and the result is what the user ran for; one tick shows it.
    """
    project = QgsProject.instance()
    base = sr_name or (Path(sr_path).stem if sr_path else group_name)
    sr = None
    if sr_path:
        sr = load_raster(sr_path, base)
        style_rgb(sr, like)
    spread = None
    if spread_path:
        spread = load_raster(spread_path)
        input_range = value_range(like if like is not None and like.isValid() else sr) if (like or sr) else None
        spread.setName(spread_layer_name(base, samples, style_spread(spread, input_range)))
    probability = (load_styled(probability_path, f"{base} iceplant probability", style_probability)
                   if probability_path else None)
    layers = [layer for layer in (probability, spread, sr) if layer is not None]
    group = project.layerTreeRoot().insertGroup(0, group_name)
    for layer in layers:
        layer.setCustomProperty(RESULT_PROPERTY, True)
        project.addMapLayer(layer, False)
        group.addLayer(layer).setItemVisibilityChecked(layer is not spread)
    return layers
