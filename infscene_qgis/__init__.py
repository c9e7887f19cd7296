"""InfScene QGIS plugin: diffusion super-resolution of rasters, run by the InfScene engine in its
own Python environment (torch and rasterio never load into QGIS)."""
from typing import Any


def classFactory(iface: Any) -> Any:  # noqa: N802 - QGIS plugin API
    """QGIS entry point; imports lazily so loading the package does not pull in Qt widgets."""
    from .plugin import InfScenePlugin

    return InfScenePlugin(iface)
