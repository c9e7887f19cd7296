"""Speed of each model family at its default settings, in one run (issue 9's speed figures).

    .venv/bin/python bench/family_speed.py --out docs/bench/family_speed_cpu.json

On the real NAIP scene (../shared/data/scenes/naip_ND_5m), a window super-resolved 4x to about
`--megapixels` of output, each method in a fresh process (bench/run_one.py, which also samples peak RAM):
SR3 at its defaults (vcf, 50 steps), and e2diffsr at --detail 0 (the regression branch alone), at its default
detail and at 1, each at --precision auto (bf16 where the CPU has it natively) and fp32. The figure is output
megapixels per second of the whole super-resolution (reading, sampling, decoding, writing), and the ratio of
each to SR3 in the same run. Take it on an idle machine: a figure measured beside other work is not a figure.
`--scale` and `--megapixels` size the window (the whole scene at 5x is 16.9 MP); `--no-sr3` leaves SR3 out
(hours at that size).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import rasterio

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"
MODELS = ROOT / "resources" / "models"


def centre_window(megapixels: float, scale: float) -> list[float]:
    """Bounds of a centred window whose output at `scale` has about this many megapixels (at most the whole scene)."""
    with rasterio.open(SCENE) as ds:
        side = min(round(math.sqrt(megapixels * 1e6) / scale), ds.height, ds.width)
        row, col = (ds.height - side) // 2, (ds.width - side) // 2
        left, top = ds.xy(row, col, offset="ul")
        size = side * ds.res[0]
        return [left, top - size, left + size, top]


def run(name: str, model: Path, scale: float, bounds: Optional[list[float]], extra: list[str], tmp: str) -> dict:
    window = [] if bounds is None else ["--bounds", *map(str, bounds)]
    cmd = [sys.executable, str(ROOT / "bench" / "run_one.py"), str(SCENE), f"{tmp}/out.tif", "--scale", str(scale), *window, "--model", str(model), "--device", "cpu", *extra]
    row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {"method": name, **row}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--megapixels", type=float, default=0.25, help="output size of the window (default %(default)s)")
    p.add_argument("--scale", type=float, default=4.0, help="(default %(default)s)")
    p.add_argument("--whole-scene", action="store_true", help="the whole scene instead of a centred window")
    p.add_argument("--no-sr3", action="store_true", help="leave SR3 out")
    p.add_argument("--sr3", type=Path, default=MODELS / "sr3")
    p.add_argument("--e2diffsr", type=Path, default=MODELS / "e2diffsr")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    bounds = None if args.whole_scene else centre_window(args.megapixels, args.scale)
    e2diffsr = [(f"e2diffsr detail {name} {precision}", ["--precision", precision, *flag])
                for precision in ("auto", "fp32") for name, flag in (("0", ["--detail", "0"]), ("default", []), ("1", ["--detail", "1"]))]
    methods = ([] if args.no_sr3 else [("sr3 (vcf, 50 steps) auto", args.sr3, [])]) + [(n, args.e2diffsr, f) for n, f in e2diffsr]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, flags in methods:
            rows.append(run(name, model, args.scale, bounds, ["--batch-size", "4", *flags], tmp))
            print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["x_sr3"] = None if args.no_sr3 else round(row["mp_per_s"] / rows[0]["mp_per_s"], 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
