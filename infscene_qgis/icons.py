"""The plugin icon, shared by the toolbar action, the dock and the Processing provider, and the live layer's."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon

ICON_PATH = Path(__file__).resolve().parent / "resources" / "icon.svg"


def icon() -> QIcon:
    return QIcon(str(ICON_PATH))


def live_icon() -> QIcon:
    """QGIS's own "add XYZ layer" icon: what the live-layer action adds is an XYZ layer, and a second InfScene logo
    beside the panel's on the toolbar would not say which is which."""
    return QgsApplication.getThemeIcon("/mActionAddXyzLayer.svg")
