"""`infscene iceplant INPUT OUTPUT`: the subcommand, registered on the main parser by ``register``.

Errors and cancellation are turned into one-line messages and exit codes by ``commands.main.main``;
progress is shown the same way as for `infscene sr` (bar, JSON lines for the plugin, or none).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import protocol
from ..console import band_list, emit, progress_reporter
from ..iceplant.blend import PATCH_SIZE, STRIDE


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `iceplant` subcommand to an argparse subparsers object and return its parser."""
    p = subparsers.add_parser(
        "iceplant",
        help="write the iceplant probability layer of a raster",
        description="Per-pixel probability of iceplant (Carpobrotus edulis) on an 8-bit NAIP-like raster, "
                    "as a float32 GeoTIFF on the input's grid (NaN where the input is nodata).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", type=Path, help="input raster with R,G,B[,NIR] 8-bit bands (e.g. NAIP or an SR output)")
    p.add_argument("output", type=Path, help="output GeoTIFF; written only when complete")
    p.add_argument("--model", type=Path, help="folder with nir/rgb .json + .safetensors (default: the shipped models)")
    p.add_argument("--bands", type=band_list,
                   help="1-based R,G,B[,NIR] band numbers; with NIR the NIR model is used, else the RGB-only one "
                        "(default: bands tagged red/green/blue, else 1,2,3, plus a 4th non-alpha band as NIR)")
    p.add_argument("--patch", type=int, default=PATCH_SIZE, help="patch side S of the Gaussian blending")
    p.add_argument("--stride", type=int, default=STRIDE, help="distance between patches (smaller: more overlap, slower)")
    p.add_argument("--progress", choices=list(protocol.PROGRESS_KINDS), default="bar",
                   help="bar: a progress bar on stderr; json: JSON-lines events on stdout")
    p.set_defaults(func=run_iceplant_command)
    return p


def run_iceplant_command(args: argparse.Namespace) -> int:
    from ..iceplant.predict import plan_iceplant, run_iceplant  # scikit-image and scipy: not imported at every command's start

    plan = plan_iceplant(args.input, args.output, model_dir=args.model, bands=args.bands,
                         patch_size=args.patch, stride=args.stride)
    if args.progress == "json":
        emit(plan.event())
    callback, close = progress_reporter(args.progress, len(plan.layout))
    try:
        out = run_iceplant(plan, progress=callback)
    finally:
        close()
    if args.progress == "json":
        emit(protocol.Done((str(out),)))
    else:
        print(out)
    return 0
