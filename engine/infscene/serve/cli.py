"""`infscene serve SOURCE`: the subcommand, registered on the main parser by ``add_serve_parser``.

Errors that stop the start (a refused source, a port in use) are one line and exit 1 through
``infscene.cli.main``, as for every subcommand; once serving, failures are per tile (server.py).
"""
from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from .. import protocol
from ..console import warn
from ..errors import InfSceneError
from ..models.registry import DEFAULT_MODEL_DIR
from ..plan import SROptions
from .blocks import DEFAULT_BLOCK, MAX_BLOCK, MIN_BLOCK
from .server import Settings, serve
from .source import open_source

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
                    "`infscene sr` would, cached on disk.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("source", type=Path, help="the raster to serve (GeoTIFF or any GDAL raster with a CRS)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port; 0 picks a free one")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves other machines too (no authentication: a trusted network only)")
    p.add_argument("--cache", type=Path, default=default_cache_root(), help="cache folder (shared by every layer)")
    p.add_argument("--cache-size", type=float, default=DEFAULT_CACHE_MB,
                   help="cache size bound in MB, least recently used out first; 0 keeps no disk cache")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, help=f"scale factor (default {DEFAULT_SCALE:g} unless --target-res)")
    size.add_argument("--target-res", type=float, help="finest pixel size in the raster's CRS units (e.g. 0.6 for metres)")
    p.add_argument("--model", type=Path, help=f"model folder (default: {DEFAULT_MODEL_DIR})")
    p.add_argument("--seed", type=int, default=0, help="random seed (part of the cache key)")
    p.add_argument("--detail", type=float, help="e2diffsr: 0 (faithful) to 1 (detailed) (default: the model's)")
    p.add_argument("--block", type=int, default=DEFAULT_BLOCK,
                   help="input pixels a side of the blocks the model runs over, anchored to the raster's origin")
    p.add_argument("--margin", type=int,
                   help="input pixels of context sampled around each block, so that blocks join without a seam "
                        "(default: one patch, as `infscene sr`; smaller is faster, 0 shows the blocks' borders)")
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
    scale = DEFAULT_SCALE if args.scale is None and args.target_res is None else args.scale
    options = SROptions(scale=scale, target_res=args.target_res, model_dir=args.model, seed=args.seed, detail=args.detail,
                        margin=args.margin)
    source = open_source(args.source, options, args.block)
    warn(source.warnings, args.progress == "json")
    settings = Settings(args.host, args.port, args.cache, int(args.cache_size * 1024**2), args.progress)
    asyncio.run(serve(source, settings))
    return 0
