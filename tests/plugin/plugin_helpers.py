"""Constants and helpers shared by the plugin tests (imported by name; conftest holds only fixtures)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from qgis.core import QgsProcessingFeedback, QgsRasterLayer, QgsRectangle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAIP = FIXTURES / "naip_nd_5m_64.tif"  # 64 x 64 px, 5 m, EPSG:26914, R,G,B,NIR uint8
# Top-left 24 x 24 input pixels of NAIP: with scale 2 and 32-px patches, a run is 4 patches x 2 steps.
NAIP_WINDOW = QgsRectangle(487400.0, 5207625.0, 487520.0, 5207745.0)
TINY_RUN = {"SCALE": 2.0, "STEPS": 2, "PATCH": 32, "OVERLAP": 8}


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps every progress value; optionally cancels itself once the engine has made progress."""

    def __init__(self, cancel_after_progress: bool = False) -> None:
        super().__init__()
        self.values: List[float] = []
        self._cancel_after_progress = cancel_after_progress
        self.progressChanged.connect(self._record)

    def _record(self, value: float) -> None:
        self.values.append(value)
        if self._cancel_after_progress and value > 0:
            self.cancel()


def extent_parameter(rect: QgsRectangle, layer: QgsRasterLayer) -> str:
    """The Processing string form of an extent with its CRS."""
    return f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} [{layer.crs().authid()}]"


def flag_values(arguments: List[str], flag: str, count: int = 1) -> List[str]:
    """The `count` values that follow `flag` on an engine command line."""
    start = arguments.index(flag) + 1
    return arguments[start:start + count]


def leftovers(folder: Path) -> List[str]:
    """Any file in `folder`: after a cancel or a failure there must be none (no output, no temp)."""
    return sorted(p.name for p in folder.iterdir())


def stretches(layer: QgsRasterLayer) -> Dict[str, Tuple[int, float, float]]:
    """Per colour role of a multiband renderer: (band, min, max) the layer is drawn with."""
    r = layer.renderer()
    roles = {"red": (r.redBand(), r.redContrastEnhancement()), "green": (r.greenBand(), r.greenContrastEnhancement()),
             "blue": (r.blueBand(), r.blueContrastEnhancement())}
    return {role: (band, ce.minimumValue(), ce.maximumValue()) for role, (band, ce) in roles.items()}
