"""What --self-ensemble costs: the detail-0 decode of one crop of the NAIP scene with and without it, in this process,
alternated and the median of several of each (a shared machine's load then falls on both alike). The decode alone:
the whole run's extra (reading, planning, writing) is the same with and without, so a run's ratio is lower
(bench/quality.py --self-ensemble gives each run's seconds).

    PYTHONPATH=engine .venv/bin/python bench/ensemble_cost.py --side 180 --scale 4 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np
import rasterio

from infscene.diffusion.canvas import CanvasFactory
from infscene.execution.local import LocalExecutor
from infscene.models.e2diffsr.denoiser import LatentPatchDenoiser
from infscene.models.e2diffsr.ensemble import decode_ensemble
from infscene.models.e2diffsr.network import E2DiffSR
from infscene.models.e2diffsr.run import decode_scene, latent_grid
from infscene.models.registry import load_model

from quality import TRUTHS

PATCH, OVERLAP = 256, 64  # the shipped model's grid: only the latent grid's size depends on it


def naip_crop(side: int) -> np.ndarray:
    """The centre side x side RGB of the NAIP scene, in model units."""
    with rasterio.open(TRUTHS["naip_ND_5m"][0]) as ds:
        row, col = (ds.height - side) // 2, (ds.width - side) // 2
        return ds.read([1, 2, 3], window=((row, row + side), (col, col + side))).astype(np.float32) / 127.5 - 1.0


def decode_seconds(model: E2DiffSR, lr: np.ndarray, scale: float, ensemble: bool, precision: str) -> float:
    """Wall time of one detail-0 decode of lr on this process's one lane."""
    out = (round(lr.shape[1] * scale), round(lr.shape[2] * scale))
    untracked = SimpleNamespace(check_cancel=lambda: None, advance=lambda units: None)
    with LocalExecutor([LatentPatchDenoiser(model, scale, precision)], CanvasFactory(None)) as executor:
        job = SimpleNamespace(grid=latent_grid(*out, PATCH, OVERLAP), executor=executor, tracker=untracked)
        start = time.perf_counter()
        if ensemble:
            decode_ensemble(job, model.config, lr, out)
        else:
            decode_scene(job, model.config, None, lr, out, True, 0.0)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=180, help="input pixels of the crop's side")
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = p.parse_args()
    model, lr = load_model(None), naip_crop(args.side)
    decode_seconds(model, lr, args.scale, False, args.precision)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for ensemble in (False, True):
            times[ensemble].append(decode_seconds(model, lr, args.scale, ensemble, args.precision))
    plain, ensemble = statistics.median(times[False]), statistics.median(times[True])
    print(f"decode of {args.side} px at {args.scale:g}x: plain {plain:.2f} s, self-ensemble {ensemble:.2f} s, "
          f"ratio {ensemble / plain:.2f} (medians of {args.repeats})")


if __name__ == "__main__":
    main()
