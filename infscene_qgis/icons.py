"""The plugin icon, shared by the toolbar action, the dock and the Processing provider."""
from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtGui import QIcon

ICON_PATH = Path(__file__).resolve().parent / "resources" / "icon.svg"


def icon() -> QIcon:
    return QIcon(str(ICON_PATH))
