"""Plugin entry object: registers the Processing provider and, on the desktop, the panel and its action."""
from __future__ import annotations

from typing import Any, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAction

from .dock import InfSceneDock
from .icons import icon
from .processing_provider import InfSceneProvider

MENU = "&InfScene"


class InfScenePlugin:
    """Lifecycle of the plugin inside QGIS (desktop, or qgis_process through initProcessing only)."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: Optional[InfSceneProvider] = None
        self.dock: Optional[InfSceneDock] = None
        self.action: Optional[QAction] = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS plugin API
        """Called by qgis_process and headless use as well as by initGui: must not touch the GUI."""
        if self.provider is None:
            self.provider = InfSceneProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS plugin API
        self.initProcessing()
        self.dock = InfSceneDock(self.iface, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()  # opened from the toolbar or the Raster menu, not on every QGIS start
        self.action = QAction(icon(), "InfScene super-resolution", self.iface.mainWindow())
        self.action.setCheckable(True)
        self.dock.setToggleVisibilityAction(self.action)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)

    def unload(self) -> None:
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action = None
        if self.dock is not None:
            self.dock.dispose()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
