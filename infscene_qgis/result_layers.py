"""Adds finished outputs to the project, styled and grouped. Main thread only (QgsTask.finished)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

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


def style_rgb(layer: QgsRasterLayer) -> None:
    """True-colour rendering of an SR output, stretched per band on a cumulative cut so uint16
    Planet data is not rendered black."""
    if layer.bandCount() < 3:
        return
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *rgb_bands(layer))
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
) -> List[QgsRasterLayer]:
    """Add the SR raster (and the probability above it) to a new group at the top of the layer tree."""
    project = QgsProject.instance()
    layers = [load_raster(sr_path)]
    style_rgb(layers[0])
    if probability_path:
        probability = load_raster(probability_path, f"{Path(sr_path).stem} iceplant probability")
        style_probability(probability)
        layers.insert(0, probability)
    group = project.layerTreeRoot().insertGroup(0, group_name)
    for layer in layers:
        project.addMapLayer(layer, False)
        group.addLayer(layer)
    return layers
