"""What the context margin costs: the model calls a run of a small extent makes at each --margin (issue 20's joins,
issue 19's speed), counted from the run's plan, so no timing is involved and the figure holds on any machine.

    .venv/bin/python bench/margin_cost.py --out docs/bench/margin_cost.json

A map-anchored run samples its extent plus `margin` input pixels of context on every side, started on the raster's
patch lattice (docs/method.md, "Runs that join"), and writes only its extent. For extents of `--megapixels` of output
at `--positions` random places of the real NAIP scene (4x, the bundled model at its defaults), it reports per margin
the mean number of patches the step loop denoises per step and of fixed-size model calls (the grid's batches), and
their ratio to the run with no margin. Read it beside `bench/joins.py`, which measures what each margin buys: how
close two runs of adjacent extents come to the run of their union.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio

from infscene.plan import SROptions, plan_run

SCENE = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"


def extent_bounds(ds: rasterio.DatasetReader, row: int, col: int, side: int) -> list[float]:
    """Map bounds of the side x side input-pixel window whose top-left pixel is (row, col)."""
    left, top = ds.xy(row, col, offset="ul")
    right, bottom = ds.xy(row + side - 1, col + side - 1, offset="lr")
    return [left, bottom, right, top]


def calls(scene: Path, bounds: list[float], options: SROptions) -> tuple[int, int]:
    """(patches per step, model calls per step) of the run's plan."""
    grid = plan_run(scene, SROptions(**{**options.__dict__, "bounds": bounds})).family_plan.grid
    batches = list(grid.batches(options.batch_size))
    return sum(len(b) for b in batches), len(batches)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", type=Path, default=SCENE)
    p.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--megapixels", type=float, nargs="+", default=[0.06, 0.25, 1.0])
    p.add_argument("--margins", type=int, nargs="+", default=[0, 16, 32, 48, 64])
    p.add_argument("--positions", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    with rasterio.open(args.scene) as ds:
        for megapixels in args.megapixels:
            side = round(np.sqrt(megapixels * 1e6) / args.scale)
            places = [(int(rng.integers(0, ds.height - side)), int(rng.integers(0, ds.width - side))) for _ in range(args.positions)]
            for margin in args.margins:
                options = SROptions(scale=args.scale, bands=[1, 2, 3], model_dir=args.model, device="cpu", margin=margin)
                counts = np.array([calls(args.scene, extent_bounds(ds, r, c, side), options) for r, c in places])
                rows.append({"megapixels": megapixels, "lr_side": side, "margin": margin,
                             "patches": float(counts[:, 0].mean()), "model_calls": float(counts[:, 1].mean())})
    for row in rows:
        none = next(r for r in rows if r["megapixels"] == row["megapixels"] and r["margin"] == 0)
        row["patches_vs_no_margin"] = round(row["patches"] / none["patches"], 3)
        row["calls_vs_no_margin"] = round(row["model_calls"] / none["model_calls"], 3)
        print(json.dumps(row))
    args.out.write_text(json.dumps({"scene": args.scene.name, "scale": args.scale, "positions": args.positions,
                                    "seed": args.seed, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
