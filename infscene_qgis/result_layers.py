"""Adds finished outputs to the project, styled and grouped. Main thread only (QgsTask.finished)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from osgeo import gdal
from qgis.core import (
    QgsColorRampShader,
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
# a single wild sample) do not wash the map out.
SPREAD_UPPER_CUT = 0.98


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


def style_pseudocolor(layer: QgsRasterLayer, ramp_name: str, low: float, high: float) -> None:
    """Band 1 drawn with a named colour ramp from `low` to `high` (fixed: never recomputed by QGIS)."""
    ramp = QgsStyle.defaultStyle().colorRamp(ramp_name)
    shader_function = QgsColorRampShader(low, high, ramp, QgsColorRampShader.Interpolated)
    shader_function.classifyColorRamp(5, -1)
    shader = QgsRasterShader(low, high)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)


def style_probability(layer: QgsRasterLayer) -> None:
    """Fixed 0-1 pseudocolour so probabilities look the same on every scene (no per-scene stretch)."""
    style_pseudocolor(layer, "Viridis", 0.0, 1.0)


def style_spread(layer: QgsRasterLayer) -> None:
    """The per-pixel spread of several samples (std, input units) from 0 (dark: every sample agrees) to
    a high percentile (bright: where the model invents detail). A spread that is 0 everywhere (the
    regression branch alone is deterministic) still gets a valid 0-1 ramp."""
    _, high = layer.dataProvider().cumulativeCut(1, 0.0, SPREAD_UPPER_CUT)
    style_pseudocolor(layer, "Magma", 0.0, high if high > 0 else 1.0)


def spread_layer_name(sr_path: str, samples: int) -> str:
    return f"{Path(sr_path).stem} spread ({samples} samples)"


def load_styled(path: str, name: str, style: Callable[[QgsRasterLayer], None]) -> QgsRasterLayer:
    layer = load_raster(path, name)
    style(layer)
    return layer


def add_group(
    group_name: str,
    sr_path: str,
    probability_path: Optional[str] = None,
    like: Optional[QgsRasterLayer] = None,
    spread_path: Optional[str] = None,
    samples: int = 1,
) -> List[QgsRasterLayer]:
    """Add the SR raster, the spread of its `samples` above it and the probability on top to a new
    group at the top of the layer tree.

    `like` is the input layer, whose stretch the SR raster is drawn with (see style_rgb). The spread
    is added unticked: it is opaque, and the result is what the user ran for; one tick shows it.
    """
    project = QgsProject.instance()
    sr = load_raster(sr_path)
    style_rgb(sr, like)
    spread = load_styled(spread_path, spread_layer_name(sr_path, samples), style_spread) if spread_path else None
    probability = (load_styled(probability_path, f"{Path(sr_path).stem} iceplant probability", style_probability)
                   if probability_path else None)
    layers = [layer for layer in (probability, spread, sr) if layer is not None]
    group = project.layerTreeRoot().insertGroup(0, group_name)
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer).setItemVisibilityChecked(layer is not spread)
    return layers
