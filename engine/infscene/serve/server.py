"""The HTTP side: aiohttp serving `/{z}/{x}/{y}.png`, the ready line, activity events and a clean stop.

aiohttp runs with handler cancellation on: a client that disconnects (QGIS abandons the tiles of a view it
has left) cancels its handler, which is how the scheduler learns a block is no longer wanted. Requests are
parsed from text before any number is made of them, and answered 400 (not a tile), 404 (no such route, or
beyond max_zoom) or 500 (the tile failed: one log line); a failure never stops the server. SIGINT and
SIGTERM stop it: the block being made is cancelled through its cancel check (its run removes its files),
the run folders are removed, and the command exits 0.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from aiohttp import web

from ..console import emit
from ..errors import Cancelled, InfSceneError, InfSceneWarning
from ..protocol import Serving, TileActivity
from ..raster.workspace import Workspace
from .cache import DiskCache
from .render import transparent_tile
from .source import LiveSource, Source
from .tiles import Tiles
from .zooms import parse_tile

ACTIVITY_INTERVAL_S = 0.25  # TileActivity at most this often, and only when it changed


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    cache_root: Path
    cache_bytes: int
    progress: str  # bar, json or none


def log(message: str) -> None:
    """One line on stderr: what went wrong with a tile, the cache, or the server."""
    print(f"infscene serve: {message}", file=sys.stderr, flush=True)


def url_template(host: str, port: int) -> str:
    """The XYZ URL QGIS adds: a wildcard host is reached at the loopback address, IPv6 in brackets."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/{{z}}/{{x}}/{{y}}.png"


def make_app(tiles: Tiles, serving: Callable[[], Serving]) -> web.Application:
    app = web.Application()

    async def tile(request: web.Request) -> web.Response:
        parsed = parse_tile(request.match_info["z"], request.match_info["x"], request.match_info["y"])
        if parsed is None:
            return web.Response(status=400, text="not a tile: /{z}/{x}/{y}.png with whole numbers, 0 <= x, y < 2^z\n")
        if parsed[0] > tiles.source.zooms.max_zoom:
            return web.Response(status=404, text=f"zoom {parsed[0]} is beyond this layer's max zoom "
                                                 f"{tiles.source.zooms.max_zoom}\n")
        try:
            data = await tiles.tile(*parsed)
        except Cancelled:
            return web.Response(status=503, text="the server is stopping\n")
        except InfSceneError as exc:
            log(f"tile {'/'.join(map(str, parsed))}: {exc}")
            return web.Response(status=500, text=f"{exc}\n")
        except Exception as exc:  # a bug: one line, and the server goes on
            first = (str(exc).strip().splitlines() or [""])[0]
            log(f"tile {'/'.join(map(str, parsed))}: internal error: {type(exc).__name__}: {first}")
            return web.Response(status=500, text="internal error\n")
        return web.Response(body=data, content_type="image/png")

    async def index(request: web.Request) -> web.Response:
        return web.json_response(asdict(serving()))

    app.router.add_get("/{z}/{x}/{y}.png", tile)
    app.router.add_get("/", index)
    return app


async def _report(activity: Callable[[], TileActivity], kind: str) -> None:
    """TileActivity as JSON lines (json), a status line on a terminal (bar), or nothing; only when it changed."""
    last = None
    while True:
        await asyncio.sleep(ACTIVITY_INTERVAL_S)
        now = activity()
        if now == last:
            continue
        last = now
        if kind == "json":
            emit(now)
        elif kind == "bar" and sys.stderr.isatty():
            print(f"\rtiles: {now.queued} queued, {now.rendering} in progress, {now.done} done "
                  f"({now.cached} from the cache)  ", end="", file=sys.stderr, flush=True)


async def serve(source: Source, settings: Settings) -> None:
    """Serve the layer until SIGINT or SIGTERM; raises InfSceneError (one line) when it cannot start."""
    stopping = threading.Event()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with Workspace() as workspace, warnings.catch_warnings():
        warnings.simplefilter("ignore", InfSceneWarning)  # the start's plan already said them once
        cache = DiskCache(settings.cache_root, settings.cache_bytes, workspace, log)
        tiles = Tiles(LiveSource(source, log), cache, workspace.folder_in(Path(tempfile.gettempdir())), stopping, log)
        transparent_tile()
        port = settings.port

        def serving() -> Serving:
            zooms = tiles.source.zooms
            return Serving(url_template(settings.host, port), port, zooms.min_zoom, zooms.max_zoom, zooms.native_zoom)

        runner = web.AppRunner(make_app(tiles, serving), handler_cancellation=True, access_log=None)
        await runner.setup()
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                await web.TCPSite(runner, settings.host, settings.port).start()
            except OSError as exc:
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                raise InfSceneError(f"cannot listen on {settings.host}:{settings.port}: {reason} "
                                    "(choose another --port, or --port 0 for a free one)") from exc
            port = runner.addresses[0][1]
            _stop_on_signals(loop, stop)
            tasks = [asyncio.create_task(tiles.scheduler.run()), asyncio.create_task(_report(tiles.activity, settings.progress))]
            _announce(serving(), settings.progress, cache, source)
            await stop.wait()
        finally:
            stopping.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            await loop.run_in_executor(None, tiles.close)
    if tasks:
        log("stopped")


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop` (the loop's own handlers; plain handlers where it has none, as on Windows)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except NotImplementedError:
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))


def _announce(serving: Serving, kind: str, cache: DiskCache, source: Source) -> None:
    if kind == "json":
        emit(serving)
    else:
        print(f"serving {serving.url} (zoom {serving.min_zoom}-{serving.max_zoom}, super-resolved above "
              f"{serving.native_zoom}); Ctrl-C stops", flush=True)
    if cache.enabled:
        log(f"cache: {cache.root / source.cache_key}")
