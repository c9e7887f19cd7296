"""Planning that grows with the side, not the area (issue 34, item 4): `infscene sr --dry-run` on huge rasters.

A VRT of SIDE x SIDE px holds the real NAIP ND scene in its corner (the rest empty); the whole command is timed
with --dry-run at 4x, once per side, and its last stderr line kept (a raster this size is refused: its output
cannot fit on any disk).

    .venv/bin/python bench/planning_size.py --out docs/bench/planning_size_cpu.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quality import TRUTHS


def huge_vrt(path: Path, side: int, source: Path) -> Path:
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="0">'
                    f'{source}</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>'
                    for b in (1, 2, 3))
    path.write_text(f'<VRTDataset rasterXSize="{side}" rasterYSize="{side}"><SRS>EPSG:26914</SRS>'
                    f'<GeoTransform>500000, 5, 0, 5300000, 0, -5</GeoTransform>{bands}</VRTDataset>')
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sides", type=int, nargs="+", default=[10**6, 10**7])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            vrt = huge_vrt(Path(tmp) / f"huge_{side}.vrt", side, TRUTHS["naip_ND_5m"][0])
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "infscene", "sr", str(vrt), str(Path(tmp) / "out.tif"),
                                   "--scale", "4", "--dry-run"], capture_output=True, text=True, timeout=600)
            row = {"side_px": side, "wall_s": round(time.perf_counter() - started, 2), "exit": done.returncode,
                   "message": (done.stderr.strip().splitlines() or [""])[-1]}
            print(json.dumps(row))
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scale": 4, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
