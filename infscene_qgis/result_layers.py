"""Adds finished outputs to the project, styled and grouped. Main thread only (QgsTask.finished)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

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


def style_probability(layer: QgsRasterLayer) -> None:
    """Fixed 0-1 pseudocolour so probabilities look the same on every scene (no per-scene stretch)."""
    ramp = QgsStyle.defaultStyle().colorRamp("Viridis")
    shader_function = QgsColorRampShader(0.0, 1.0, ramp, QgsColorRampShader.Interpolated)
    shader_function.classifyColorRamp(5, -1)
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)


def add_group(
    group_name: str,
    sr_path: str,
    probability_path: Optional[str] = None,
    like: Optional[QgsRasterLayer] = None,
) -> List[QgsRasterLayer]:
    """Add the SR raster (and the probability above it) to a new group at the top of the layer tree.

    `like` is the input layer, whose stretch the SR raster is drawn with (see style_rgb).
    """
    project = QgsProject.instance()
    layers = [load_raster(sr_path)]
    style_rgb(layers[0], like)
    if probability_path:
        probability = load_raster(probability_path, f"{Path(sr_path).stem} iceplant probability")
        style_probability(probability)
        layers.insert(0, probability)
    group = project.layerTreeRoot().insertGroup(0, group_name)
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer)
    return layers
