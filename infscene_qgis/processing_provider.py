"""The InfScene Processing provider (toolbox, batch, modeler, qgis_process)."""
from __future__ import annotations

from typing import List

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .processing_algorithms import IceplantAlgorithm, SuperResolveAlgorithm
from .icons import icon


class InfSceneProvider(QgsProcessingProvider):
    """Registers the two engine algorithms; outputs are GeoTIFF only, the one format the engine writes."""

    def id(self) -> str:
        return "infscene"

    def name(self) -> str:
        return "InfScene"

    def icon(self) -> QIcon:
        return icon()

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SuperResolveAlgorithm())
        self.addAlgorithm(IceplantAlgorithm())

    def supportedOutputRasterLayerExtensions(self) -> List[str]:
        return ["tif"]
