"""Why the run's models are laid out channels-last and its outputs deflate at level 1 (docs/benchmarks.md, "Speed at
every detail"): one decode tile of the bundled e2diffsr (about 1 MP of output at 5x, margins on every side) on one
thread in NCHW and channels-last, fp32 and bf16; and a 4 MP RGB output written, overviewed and closed at deflate
levels 6 (GDAL's default) and 1. Best of three. Take it on an idle machine.

    .venv/bin/python bench/layout_speed.py --out docs/bench/layout_speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from rasterio.transform import from_origin

from infscene.models.e2diffsr.run import typical_tile
from infscene.modelformat.folder import load_weights
from infscene.models.precision import BF16, FP32, autocast, bf16_native
from infscene.modelformat.files import DEFAULT_MODEL_DIR
from infscene.models.registry import family_of, load_config
from infscene.raster.io import geotiff_profile

SCENE = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"


def best_of(work: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return round(min(times), 3)


def decode_tile_seconds() -> list[dict]:
    config = load_config(DEFAULT_MODEL_DIR)
    rows = []
    for layout in ("nchw", "channels_last"):
        model = load_weights(family_of(config).network, config, DEFAULT_MODEL_DIR, "cpu")
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)  # in place: a model of its own per layout
        tile = typical_tile(model, 5.0)
        for precision in (FP32, BF16) if bf16_native(torch.device("cpu")) else (FP32,):
            with torch.no_grad(), autocast(torch.device("cpu"), precision):
                rows.append({"work": "e2diffsr decode tile at 5x", "layout": layout, "precision": precision, "seconds": best_of(tile)})
    return rows


def write_seconds() -> list[dict]:
    with rasterio.open(SCENE) as ds:
        small = ds.read([1, 2, 3], window=((0, 400), (0, 400)))
    pixels = np.stack([cv2.resize(band, (2000, 2000), interpolation=cv2.INTER_CUBIC) for band in small])  # 4 MP, 8-bit
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.tif"
        for level in (6, 1):
            profile = {**geotiff_profile("uint8", 3, 2000, 2000, "EPSG:32614", from_origin(0, 0, 1, 1), None), "ZLEVEL": level}

            def write() -> None:
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(pixels)
                    dst.build_overviews([2, 4, 8], Resampling.average)

            rows.append({"work": "4 MP RGB output written, overviewed, closed", "deflate_level": level,
                         "seconds": best_of(write), "mb": round(os.path.getsize(path) / 1e6, 2)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = decode_tile_seconds() + write_seconds()
    for row in rows:
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
