"""`infscene serve SOURCE`: the subcommand, registered on the main parser by ``add_serve_parser``.

Errors that stop the start (a refused source, a port in use) are one line and exit 1 through
``commands.main.main``, as for every subcommand; once serving, failures are per tile (server.py).
"""
from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from .. import protocol
from ..console import warn
from ..errors import InfSceneError
from ..option_flags import add_option_flags, table_options
from ..plan import SROptions
from ..serve.blocks import DEFAULT_BLOCK, MAX_BLOCK, MIN_BLOCK

BLOCK_RUN_OPTIONS = ("scale", "target_res", "bands", "seed", "margin", "detail", "precision", "model_dir")
DEFAULT_PORT = 8765
DEFAULT_SCALE = 4.0
DEFAULT_CACHE_MB = 1024.0
MAX_PORT = 65535


def default_cache_root() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME (or ~/.cache, %LOCALAPPDATA% on Windows)/infscene/tiles."""
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or Path.home() / ".cache"
    return Path(base) / "infscene" / "tiles"


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve a raster as a live super-resolved XYZ tile layer",
        description="Serve SOURCE as XYZ tiles (256 px, EPSG:3857, /{z}/{x}/{y}.png) super-resolved on demand: add the "
                    "printed URL as an XYZ layer in QGIS. Zooms up to the source's resolution show the source; finer "
                    "ones, up to the target resolution, are cut from blocks of the source super-resolved as "
                    "`infscene sr` would, cached on disk. Without --scale or --target-res the finest zoom is "
                    f"{DEFAULT_SCALE:g} times finer than the source.",
    )
    p.add_argument("source", type=Path, help="the raster to serve (GeoTIFF or any GDAL raster with a CRS)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port; 0 picks a free one (default: {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1); 0.0.0.0 serves other machines too (no authentication: "
                        "a trusted network only)")
    p.add_argument("--cache", type=Path, default=default_cache_root(), help="cache folder, shared by every layer (default: $XDG_CACHE_HOME/infscene/tiles, or ~/.cache/...)")
    p.add_argument("--cache-size", type=float, default=DEFAULT_CACHE_MB,
                   help=f"cache size bound in MB, least recently used out first; 0 keeps no disk cache (default: {DEFAULT_CACHE_MB:g})")
    # The options that decide a block's pixels, as `infscene sr` takes them (the option table); without --scale or
    # --target-res the layer is DEFAULT_SCALE times finer than the source.
    add_option_flags(p, table_options(*BLOCK_RUN_OPTIONS), one_size_required=False)
    p.add_argument("--block", type=int, default=DEFAULT_BLOCK,
                   help=f"input pixels a side of the blocks the model runs over, anchored to the raster's origin (default: {DEFAULT_BLOCK})")
    p.add_argument("--progress", choices=list(protocol.PROGRESS_KINDS), default="bar",
                   help="json: the `serving` event, then `tiles` events on stdout; bar: one ready line and a status "
                        "line on a terminal; none: the ready line only")
    p.set_defaults(func=run_serve)
    return p


def run_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= MAX_PORT:
        raise InfSceneError(f"--port must be between 0 and {MAX_PORT}, got {args.port}")
    if not 0 <= args.cache_size < float("inf"):
        raise InfSceneError(f"--cache-size must be 0 or more MB, got {args.cache_size:g}")
    if not MIN_BLOCK <= args.block <= MAX_BLOCK:
        raise InfSceneError(f"--block must be between {MIN_BLOCK} and {MAX_BLOCK} input pixels, got {args.block}")
    values = {name: getattr(args, name) for name in BLOCK_RUN_OPTIONS}
    if args.scale is None and args.target_res is None:
        values["scale"] = DEFAULT_SCALE
    options = SROptions(**values)
    from ..serve.server import Settings, serve  # aiohttp: imported by `infscene serve` alone, not by every command's start
    from ..serve.source import open_source

    source = open_source(args.source, options, args.block)
    warn(source.warnings, args.progress == "json")
    settings = Settings(args.host, args.port, args.cache, int(args.cache_size * 1024**2), args.progress)
    asyncio.run(serve(source, settings))
    return 0
