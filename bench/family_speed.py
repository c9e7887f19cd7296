"""Speed of each model family at its default settings, in one run (issue 9's speed figures).

    .venv/bin/python bench/family_speed.py --out docs/bench/family_speed_cpu.json

On the real NAIP scene (../shared/data/scenes/naip_ND_5m), a window super-resolved 4x to about
`--megapixels` of output, each method in a fresh process (bench/run_one.py, which also samples peak RAM):
SR3 at its defaults (vcf, 50 steps), e2diffsr at its defaults (vcf, its 4 steps) and the e2diffsr
regression branch alone. The figure is output megapixels per second of the whole super-resolution
(reading, sampling, decoding, writing), and the ratio of each to SR3 in the same run. Take it on an
idle machine: a figure measured beside other work is not a figure.
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
MODELS = ROOT / "resources" / "models"
SCALE = 4.0


def centre_window(megapixels: float) -> list[float]:
    """Bounds of a centred square window whose 4x output has about this many megapixels."""
    with rasterio.open(SCENE) as ds:
        side = round(math.sqrt(megapixels * 1e6) / SCALE)
        row, col = (ds.height - side) // 2, (ds.width - side) // 2
        left, top = ds.xy(row, col, offset="ul")
        size = side * ds.res[0]
        return [left, top - size, left + size, top]


def run(name: str, model: Path, bounds: list[float], extra: list[str], tmp: str) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "run_one.py"), str(SCENE), f"{tmp}/{name}.tif", "--scale", str(SCALE),
           "--bounds", *map(str, bounds), "--model", str(model), "--device", "cpu", *extra]
    row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {"method": name, **row}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--megapixels", type=float, default=0.25, help="output size of the window (default %(default)s)")
    p.add_argument("--sr3", type=Path, default=MODELS / "sr3")
    p.add_argument("--e2diffsr", type=Path, default=MODELS / "e2diffsr")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    bounds = centre_window(args.megapixels)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            run("sr3 (vcf, 50 steps)", args.sr3, bounds, ["--batch-size", "4"], tmp),
            run("e2diffsr (vcf, 4 steps)", args.e2diffsr, bounds, ["--batch-size", "4"], tmp),
            run("e2diffsr regression branch alone", args.e2diffsr, bounds, ["--batch-size", "4", "--regression-only"], tmp),
        ]
    for row in rows:
        row["x_sr3"] = round(row["mp_per_s"] / rows[0]["mp_per_s"], 1)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
