"""Output files as large as their data (issue 34, item 2): what `infscene sr` writes against GDAL's COG driver.

Runs the whole command on a raster (default: the full NAIP ND 5 m scene at 4x, the bundled e2diffsr at its default
detail), then copies the output's full-resolution pixels with GDAL's COG driver twice (deflate at GDAL's level 6,
and at the engine's level 1 with the horizontal predictor; overviews averaged down to one tile, as the engine's) and
reports the sizes, the ratio to each, the tiles' own bytes, GDAL's COG validation and the command's wall time.

    .venv/bin/python bench/output_files.py --out docs/bench/output_files_cpu.json
    PYTHONPATH=/path/to/older/engine .venv/bin/python bench/output_files.py ...   # another engine, same figures
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

from quality import TRUTHS

COG = {"driver": "COG", "BLOCKSIZE": 256, "OVERVIEWS": "AUTO", "OVERVIEW_RESAMPLING": "AVERAGE", "BIGTIFF": "IF_SAFER"}
REFERENCES = {"gdal_cog_deflate6": {**COG, "COMPRESS": "DEFLATE"},
              "gdal_cog_deflate1_predictor": {**COG, "COMPRESS": "DEFLATE", "LEVEL": 1, "PREDICTOR": "STANDARD"}}


def full_resolution_copy(path: Path, into: Path) -> Path:
    """The output's pixels alone (no overviews), uncompressed, as GDAL's COG driver's input."""
    with rasterio.open(path) as src:
        profile = {**src.profile, "compress": None, "tiled": True, "blockxsize": 256, "blockysize": 256}
        profile.pop("predictor", None)
        with rasterio.open(into, "w", **profile) as dst:
            for _, window in src.block_windows(1):
                dst.write(src.read(window=window), window=window)
    return into


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, default=TRUTHS["naip_ND_5m"][0])
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--extra", nargs="*", default=[], help="more flags for infscene sr, e.g. --detail 0")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        output = work / "sr.tif"
        command = [sys.executable, "-m", "infscene", "sr", str(args.input), str(output), "--scale", str(args.scale),
                   "--no-checkpoint", "--progress", "none", *args.extra]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall_s = time.perf_counter() - started
        errors, warnings, _ = validate(str(output), full_check=True)
        with rasterio.open(output) as ds:
            shape = [ds.count, ds.height, ds.width]
            data_bytes = ds.count * ds.height * ds.width * np.dtype(ds.dtypes[0]).itemsize
        source = full_resolution_copy(output, work / "pixels.tif")
        sizes = {"infscene": output.stat().st_size}
        for name, options in REFERENCES.items():
            reference = work / f"{name}.tif"
            rasterio.shutil.copy(source, reference, **options)
            sizes[name] = reference.stat().st_size
    report = {
        "input": str(args.input), "scale": args.scale, "extra_flags": args.extra, "output_shape": shape,
        "output_mpx": round(shape[1] * shape[2] / 1e6, 2), "pixel_bytes": data_bytes, "file_bytes": sizes,
        "ratio_to": {name: round(sizes["infscene"] / sizes[name], 3) for name in REFERENCES},
        "cog_validation": {"errors": errors, "warnings": warnings}, "command_wall_s": round(wall_s, 2),
    }
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
