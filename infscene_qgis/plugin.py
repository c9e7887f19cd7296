"""Plugin entry object: registers the Processing provider and, on the desktop, the panel, the live layers and their
actions."""
from __future__ import annotations

from typing import Any, Optional, Tuple

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAction

from .dock import InfSceneDock
from .engine_request import SrOptions
from .icons import icon, live_icon
from .live_layer import LiveLayers
from .processing_provider import InfSceneProvider
from .run_controller import RunController

MENU = "&InfScene"


class InfScenePlugin:
    """Lifecycle of the plugin inside QGIS (desktop, or qgis_process through initProcessing only)."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: Optional[InfSceneProvider] = None
        self.dock: Optional[InfSceneDock] = None
        self.runs: Optional[RunController] = None  # runs what the panel asks, checks the engine, adds the results
        self.action: Optional[QAction] = None
        self.live: Optional[LiveLayers] = None
        self.live_action: Optional[QAction] = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS plugin API
        """Called by qgis_process and headless use as well as by initGui: must not touch the GUI."""
        if self.provider is None:
            self.provider = InfSceneProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS plugin API
        self.initProcessing()
        self.runs = RunController(self.iface)
        self.dock = InfSceneDock(self.iface, self.iface.mainWindow(), self.runs)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()  # opened from the toolbar or the Raster menu, not on every QGIS start
        self.action = QAction(icon(), "InfScene super-resolution", self.iface.mainWindow())
        self.action.setCheckable(True)
        self.dock.setToggleVisibilityAction(self.action)
        self.live = LiveLayers(self.iface, self._live_options)
        self.dock.liveLayerRequested.connect(self.live.add)
        self.live_action = QAction(live_icon(), "Add live super-resolved layer", self.iface.mainWindow())
        self.live_action.setToolTip("Add a live super-resolved layer of the active raster layer: its tiles are "
                                    "super-resolved as the map shows them (options of the InfScene panel)")
        self.live_action.triggered.connect(lambda: self.live.add(self.iface.activeLayer()))
        for action in (self.action, self.live_action):
            self.iface.addToolBarIcon(action)
            self.iface.addPluginToRasterMenu(MENU, action)

    def _live_options(self) -> Tuple[SrOptions, Optional[str]]:
        """A new live layer's scale or pixel size, seed, detail and model folder: the panel's (it exists whenever the
        live layers do)."""
        return self.dock.options(), self.dock.engine_box.model_dir()

    def unload(self) -> None:
        for action in (self.live_action, self.action):
            if action is not None:
                self.iface.removePluginRasterMenu(MENU, action)
                self.iface.removeToolBarIcon(action)
        self.action = self.live_action = None
        if self.live is not None:
            self.live.dispose()  # stops every server and waits for it: no process outlives the plugin
            self.live = None
        if self.dock is not None:
            self.dock.dispose()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        self.runs = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
