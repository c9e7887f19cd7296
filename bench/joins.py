"""Runs that join (issue 20): adjacent extents super-resolved in separate runs against one run over their union.

A real NAIP scene (naip_ND_5m) is area-downsampled by the scale and written as a GeoTIFF; its union is
super-resolved in one run, then its left and right halves (and, with --sheets, its four quadrants, as a
Processing batch over map sheets would) each in a run of its own (`--bounds`), and the pieces are mosaicked.
For each margin (`--margins`, input pixels of context; "default" is the engine's) and family it reports:

- the mean and largest |difference| between the mosaic and the union run, per distance from the shared border
  (output pixels), in 8-bit DN;
- the step across the shared border (mean |x[c] - x[c - 1]| over the rows and bands at the border column)
  of the mosaic, of the union and of the truth, and the mosaic's step relative to the truth's.

    .venv/bin/python bench/joins.py --out docs/bench/joins_cpu.json
    .venv/bin/python bench/joins.py --model resources/models/sr3 --margins 0 default --lr-size 64 96 \
        --out docs/bench/joins_sr3_cpu.json
    .venv/bin/python bench/joins.py --input ../shared/data/scenes/naip_ND_5m/m_4709963_se_14_1_20100629.tif \
        --margins 0 default 128 256 344 --out docs/bench/joins_margins_cpu.json   # the scene itself as input: no truth
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import rasterio

from infscene.plan import SROptions, plan_run
from infscene.run import super_resolve

from quality import TRUTHS, write_low_res

DISTANCE_BINS = [(0, 8), (8, 32), (32, 128), (128, 512), (512, 100_000)]  # output pixels from the shared border


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read([1, 2, 3]).astype(np.float64)


def border_step(image: np.ndarray, axis: int, at: int) -> float:
    """Mean |difference| across the line between index at - 1 and at along `axis` (2: columns, 1: rows)."""
    ahead, behind = np.take(image, at, axis=axis), np.take(image, at - 1, axis=axis)
    return float(np.abs(ahead - behind).mean())


def bounds_of(ds: rasterio.DatasetReader, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[float, float, float, float]:
    left, top = ds.transform * (cols[0], rows[0])
    right, bottom = ds.transform * (cols[1], rows[1])
    return (left, bottom, right, top)


def run_piece(lr_path: Path, out: Path, options: SROptions) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    super_resolve(lr_path, out, options)
    return read(out), time.perf_counter() - start


def degraded_centre_crop(scale: int, lr_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """naip_ND_5m's RGB centre crop of lr_size times `scale` (float32), and its area-downsampled LR (lr_size)."""
    with rasterio.open(TRUTHS["naip_ND_5m"][0]) as ds:
        scene = ds.read([1, 2, 3]).astype(np.float32)
    n_r, n_c = lr_size
    r0, c0 = (scene.shape[1] - n_r * scale) // 2, (scene.shape[2] - n_c * scale) // 2
    crop = scene[:, r0 : r0 + n_r * scale, c0 : c0 + n_c * scale]
    return crop, np.stack([band.reshape(n_r, scale, n_c, scale).mean(axis=(1, 3)) for band in crop])


def pieces(height: int, width: int, sheets: bool) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(rows, cols) of the LR pieces: two halves split at the middle column, or four quadrants."""
    mid_r, mid_c = height // 2, width // 2
    if not sheets:
        return [((0, height), (0, mid_c)), ((0, height), (mid_c, width))]
    return [((r0, r1), (c0, c1)) for r0, r1 in ((0, mid_r), (mid_r, height)) for c0, c1 in ((0, mid_c), (mid_c, width))]


def measure(lr_path: Path, truth: Optional[np.ndarray], scale: int, margin: Optional[int], sheets: bool, args: argparse.Namespace,
            union: np.ndarray, work: Path) -> dict:
    base = SROptions(scale=scale, model_dir=args.model, seed=args.seed, checkpoint=False, margin=margin)
    with rasterio.open(lr_path) as ds:
        height, width = ds.height, ds.width
        parts = [(rows, cols, bounds_of(ds, rows, cols)) for rows, cols in pieces(height, width, sheets)]
    mosaic = np.zeros_like(union)
    seconds = 0.0
    for i, (rows, cols, bounds) in enumerate(parts):
        options = replace(base, bounds=bounds)
        values, took = run_piece(lr_path, work / f"piece_{margin}_{sheets}_{i}.tif", options)
        seconds += took
        mosaic[:, rows[0] * scale : rows[1] * scale, cols[0] * scale : cols[1] * scale] = values
    plan = plan_run(lr_path, replace(base, bounds=parts[0][2]))
    difference = np.abs(mosaic - union).max(axis=0)
    border_c = (width // 2) * scale
    distance = np.abs(np.arange(union.shape[2]) - border_c + 0.5) - 0.5  # 0 for the two columns at the border
    if sheets:
        border_r = (height // 2) * scale
        rows_distance = np.abs(np.arange(union.shape[1]) - border_r + 0.5) - 0.5
        distance = np.minimum(distance[None, :], rows_distance[:, None])
    else:
        distance = np.broadcast_to(distance[None, :], difference.shape)
    bins = []
    for lo, hi in DISTANCE_BINS:
        inside = (distance >= lo) & (distance < hi)
        if inside.any():
            bins.append({"from_px": lo, "to_px": hi, "mean_abs_dn": round(float(difference[inside].mean()), 4),
                         "max_abs_dn": round(float(difference[inside].max()), 2)})
    steps = {"mosaic": border_step(mosaic, 2, border_c), "union": border_step(union, 2, border_c)}
    if truth is not None:
        steps["truth"] = border_step(truth, 2, border_c)
    return {
        "margin": "default" if margin is None else margin, "margin_px": plan.anchor.margin, "sheets": 4 if sheets else 2,
        "mean_abs_dn": round(float(difference.mean()), 4), "max_abs_dn": round(float(difference.max()), 2),
        "bitwise_equal_share": round(float((difference == 0).mean()), 4),
        "by_distance": bins, "border_step": {k: round(v, 3) for k, v in steps.items()},
        "step_vs_union": round(steps["mosaic"] / steps["union"] - 1.0, 4),
        "step_vs_truth": round(steps["mosaic"] / steps["truth"] - 1.0, 4) if "truth" in steps else None,
        "union_step_vs_truth": round(steps["union"] / steps["truth"] - 1.0, 4) if "truth" in steps else None,
        "pieces_seconds": round(seconds, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled e2diffsr)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--lr-size", type=int, nargs=2, default=[120, 160], metavar=("ROWS", "COLS"),
                   help="LR crop of the degraded scene, from its centre (default %(default)s)")
    p.add_argument("--margins", nargs="+", default=["0", "default", "64", "128"],
                   help="context margins to measure, input pixels or 'default'")
    p.add_argument("--sheets", action="store_true", help="also measure four quadrants (a batch of map sheets)")
    p.add_argument("--input", type=Path, default=None,
                   help="super-resolve this raster itself (no truth: differences and steps against the union only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    truth: Optional[np.ndarray] = None
    if args.input is None:
        truth_crop, low = degraded_centre_crop(args.scale, args.lr_size)
        truth = truth_crop.astype(np.float64)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lr_path = args.input or work / "lr.tif"
        if args.input is None:
            write_low_res(low, args.scale, lr_path)
        union, union_seconds = run_piece(lr_path, work / "union.tif",
                                         SROptions(scale=args.scale, model_dir=args.model, seed=args.seed, checkpoint=False))
        for margin_text in args.margins:
            margin = None if margin_text == "default" else int(margin_text)
            for sheets in ([False, True] if args.sheets else [False]):
                row = measure(lr_path, truth, args.scale, margin, sheets, args, union, work)
                print(json.dumps(row))
                results.append(row)
    report = {"model": str(args.model or "bundled e2diffsr"), "scale": args.scale,
              "input": str(args.input) if args.input else f"naip_ND_5m centre crop degraded {args.scale}x, LR {args.lr_size}",
              "union_seconds": round(union_seconds, 1), "rows": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
