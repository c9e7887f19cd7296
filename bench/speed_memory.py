"""Time and peak memory against output size, per fusion mode (issue 2's benchmark).

    .venv/bin/python bench/speed_memory.py --sizes 0.25 1 4 16 64 --steps 2 --out docs/bench/speed_memory_cpu.json

Input: the real NAIP scene ../shared/data/scenes/naip_ND_5m (934 x 723 at 5 m), windows chosen so the output
has the asked number of megapixels at scale 8 (the whole scene at a larger scale for the largest sizes). Each
run is a fresh process (bench/run_one.py), so peaks do not carry over. Few steps suffice: time per patch-step
and memory do not depend on K.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import rasterio

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"


def window_for(megapixels: float, scale: float = 8.0) -> tuple[list[float], float]:
    with rasterio.open(SCENE) as ds:
        side = math.sqrt(megapixels * 1e6) / scale
        if side <= min(ds.width, ds.height):
            left, top = ds.xy(0, 0, offset="ul")
            size = round(side) * ds.res[0]
            return [left, top - size, left + size, top], scale
        return list(ds.bounds), math.sqrt(megapixels * 1e6 / (ds.width * ds.height))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1, 4, 16, 64], help="output megapixels")
    p.add_argument("--modes", nargs="+", default=["vcf", "average", "independent"])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            bounds, scale = window_for(size)
            for mode in args.modes:
                cmd = [sys.executable, str(ROOT / "bench" / "run_one.py"), str(SCENE), f"{tmp}/out.tif",
                       "--scale", str(scale), "--bounds", *map(str, bounds), "--mode", mode, "--steps", str(args.steps),
                       "--device", args.device, "--batch-size", str(args.batch_size)]
                if args.model:
                    cmd += ["--model", str(args.model)]
                result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                rows.append(result)
                print(json.dumps(result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
