"""Live super-resolved layers: an `infscene serve` tile server per layer, its XYZ layer in the project, and its end.

A run super-resolves a chosen extent once; a live layer super-resolves whatever the map shows, tile by tile, as the
user pans and zooms. The engine serves the tiles over HTTP on 127.0.0.1 and QGIS draws them as an ordinary XYZ layer,
so nothing of torch or rasterio loads into QGIS: the server is an engine process like a run, started by the same
EngineJob and EngineRunner in the engine's own environment. A server lives exactly as long as its layer: it is stopped
when the layer is removed, when the project is cleared or closed, when the plugin unloads and when QGIS quits, so no
process outlives the layer it feeds.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsDataSourceUri,
    QgsLayerTree,
    QgsMessageLog,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QObject

from .engine_locator import EngineNotFound, find_engine_python
from .engine_request import ServeRequest, SrOptions
from .engine_runner import EngineRunner
from .engine_task import LOG_TAG, EngineJob, RunOutcome
from .layer_input import InputError, raster_file_path
from .live_status import LiveStatus
from .protocol import Event, Serving, TileActivity
from .result_layers import RESULT_PROPERTY, pixel_size_units, short_name
from .settings import DEFAULT_FOLDER_NAME

# A tile server has no files to clean up: after SIGTERM it gets this long, then it is killed.
STOP_GRACE_S = 3.0
CACHE_FOLDER = Path.home() / DEFAULT_FOLDER_NAME / "live-cache"
MESSAGE_TITLE = "InfScene live"

OptionsSource = Callable[[], Tuple[SrOptions, Optional[str]]]  # the options and model folder a new server gets


@dataclass(eq=False)
class LiveServer:
    """One `infscene serve` process and the layer it feeds (`layer_id` is empty until the server is ready)."""

    source_id: str
    name: str
    job: EngineJob
    layer_id: str = ""
    activity: Optional[TileActivity] = None
    stopping: bool = False

    @property
    def pid(self) -> Optional[int]:
        return self.job.pid

    def stop(self) -> None:
        """Ask the engine to exit (SIGTERM, then SIGKILL after STOP_GRACE_S); returns at once."""
        self.stopping = True
        self.job.cancel()


class LiveLayers(QObject):
    """Every live layer of this QGIS session, one server each, and the status-bar line that sums up their work."""

    def __init__(self, iface: Any, options: OptionsSource) -> None:
        super().__init__()
        self.iface = iface
        self.servers: List[LiveServer] = []
        self._options = options
        self.status = LiveStatus(iface)
        project = QgsProject.instance()
        project.layersWillBeRemoved["QStringList"].connect(self._layers_removed)
        project.cleared.connect(self.stop_all)
        QgsApplication.instance().aboutToQuit.connect(self.stop_and_wait)

    def add(self, layer: Any) -> Optional[LiveServer]:
        """Start a server for `layer`'s file; its XYZ layer is added above `layer` once the server is ready."""
        if not isinstance(layer, QgsRasterLayer):
            self._report("select a raster layer first", Qgis.Warning)
            return None
        try:
            path = raster_file_path(layer)
            python = find_engine_python()
        except (InputError, EngineNotFound) as exc:
            self._report(str(exc), Qgis.Warning)
            return None
        options, model_dir = self._options()
        cache = cache_folder(path, options, model_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._report(f"cannot create the tile cache {cache}: {exc.strerror}", Qgis.Critical)
            return None
        request = ServeRequest(path, options, model_dir, str(cache))
        job = EngineJob(f"InfScene live: {layer.name()}", EngineRunner(python, STOP_GRACE_S), request.arguments())
        server = LiveServer(layer.id(), live_layer_name(layer, options), job)
        # Bound methods, not lambdas: a lambda closing over the server formed a cycle through PyQt's slot proxy
        # (job -> proxy -> lambda -> server -> job), and the garbage collector freed such a lambda while an event
        # for it was still queued: QGIS crashed in it (issue 33, a shuffled test order). The job is found again
        # by sender(), and PyQt drops these connections with this object.
        job.eventReceived.connect(self._job_event)
        job.finished.connect(self._job_finished)
        self.servers.append(server)
        job.start()
        self._show_status()
        return server

    def stop_all(self) -> None:
        """Stop every server without waiting (the project was cleared: its live layers are gone)."""
        for server in self.servers:
            server.stop()
        self._show_status()

    def stop_and_wait(self) -> None:
        """Stop every server and wait until each process has exited (QGIS quits or the plugin unloads)."""
        servers = list(self.servers)
        self.stop_all()
        for server in servers:
            server.job.wait(STOP_GRACE_S + 2.0)

    def dispose(self) -> None:
        """Before the plugin unloads: stop every server, disconnect from QGIS, take the status line away. The live
        layers stay in the project; their tiles no longer load."""
        project = QgsProject.instance()
        project.layersWillBeRemoved["QStringList"].disconnect(self._layers_removed)
        project.cleared.disconnect(self.stop_all)
        QgsApplication.instance().aboutToQuit.disconnect(self.stop_and_wait)
        self.stop_and_wait()
        self.servers = []
        self.status.dispose()

    def _server_of(self, job: Any) -> Optional[LiveServer]:
        """The running server whose job sent the signal being handled (None once it is no longer ours)."""
        return next((server for server in self.servers if server.job is job), None)

    def _job_event(self, event: Event) -> None:
        server = self._server_of(self.sender())
        if server is None or server.stopping:
            return
        if isinstance(event, Serving):
            self._serving(server, event)
        elif isinstance(event, TileActivity):
            server.activity = event
            self._show_status()

    def _serving(self, server: LiveServer, event: Serving) -> None:
        layer = QgsRasterLayer(xyz_uri(event), server.name, "wms")
        if not layer.isValid():
            self._report(f"QGIS cannot open the tiles of {event.url}", Qgis.Critical)
            server.stop()
            return
        layer.setCustomProperty(RESULT_PROPERTY, True)  # the panel never takes it as its input
        insert_above(layer, server.source_id)
        server.layer_id = layer.id()
        QgsMessageLog.logMessage(f"live layer '{server.name}': engine process {server.pid} serves {event.url} "
                                 f"(zoom {event.min_zoom}-{event.max_zoom}, native {event.native_zoom})",
                                 LOG_TAG, Qgis.Info)
        self._show_status()

    def _job_finished(self, outcome: RunOutcome) -> None:
        """The process exited: expected after a stop; otherwise it failed at start or died while serving."""
        server = self._server_of(self.sender())
        if server is None:
            return
        self.servers.remove(server)
        self._show_status()
        if server.stopping:
            return
        reason = outcome.error or "it exited"
        layer = QgsProject.instance().mapLayer(server.layer_id) if server.layer_id else None
        if layer is None:
            self._report(f"the server for '{server.name}' did not start: {reason}", Qgis.Critical)
            return
        layer.setName(f"{layer.name()} (server stopped)")
        self._report(f"the server for '{server.name}' stopped ({reason}); its tiles no longer load", Qgis.Critical)

    def _layers_removed(self, layer_ids: List[str]) -> None:
        for server in self.servers:
            if server.layer_id and server.layer_id in layer_ids:
                server.stop()
        self._show_status()

    def _show_status(self) -> None:
        running = [server for server in self.servers if not server.stopping]
        starting = sum(1 for server in running if not server.layer_id)
        self.status.show((server.activity for server in running), starting)

    def _report(self, message: str, level: Qgis.MessageLevel) -> None:
        """One line in the message bar (and the log), never an exception in QGIS."""
        self.iface.messageBar().pushMessage(MESSAGE_TITLE, message, level, 0 if level == Qgis.Critical else 8)
        QgsMessageLog.logMessage(f"live layer: {message}", LOG_TAG, level)


def live_layer_name(layer: QgsRasterLayer, options: SrOptions) -> str:
    """`InfScene live: naip (4x)`, or with a target pixel size `InfScene live: naip (0.6 m)`."""
    if options.target_res is not None:
        _, units = pixel_size_units(layer)
        size = f"{options.target_res:.3g} {units}"
    else:
        size = f"{options.scale:.3g}x"
    return f"InfScene live: {short_name(layer.name())} ({size})"


def xyz_uri(event: Serving) -> str:
    """The wms provider's XYZ source for the server's URL template, encoded as QGIS writes it ({z} as %7Bz%7D)."""
    uri = QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", event.url)
    uri.setParam("zmin", str(event.min_zoom))
    uri.setParam("zmax", str(event.max_zoom))
    return bytes(uri.encodedUri()).decode()


def insert_above(layer: QgsRasterLayer, source_id: str) -> None:
    """Add `layer` to the project directly above the layer `source_id` in the layer tree (in its group), so it draws
    over its source; at the top when the source has left the tree."""
    project = QgsProject.instance()
    project.addMapLayer(layer, False)
    root = project.layerTreeRoot()
    node = root.findLayer(source_id)
    parent = node.parent() if node is not None else None
    if parent is None:
        root.insertLayer(0, layer)
        return
    index = next(i for i, child in enumerate(parent.children())
                 if QgsLayerTree.isLayer(child) and child.layerId() == source_id)
    parent.insertLayer(index, layer)


def cache_folder(path: str, options: SrOptions, model_dir: Optional[str]) -> Path:
    """`~/InfScene/live-cache/<file stem>-<key>`: one folder per source file (as it is now: size and modification
    time) and per choice that changes a tile's pixels, so a cached tile is never shown for other options or for an
    edited file, and a live layer of the same file and options, later, starts from the tiles already made."""
    stat = gdal.VSIStatL(path)
    key = json.dumps([path, stat.size if stat else None, stat.mtime if stat else None, options.scale,
                      options.target_res, options.seed, options.detail, model_dir or ""])
    return CACHE_FOLDER / f"{Path(path).stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
