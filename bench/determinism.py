"""Bitwise determinism (issue 20, item 2): why model calls run on one thread each, and what it costs.

1. `--facts`: the posterior mean of the bundled e2diffsr's latent step on fixed inputs, on 1 and 2 threads and at
   batch sizes 1-8, in fp32 and bf16: the largest difference to the 1-thread batch-of-4 call (the library splits
   sums over threads and picks kernels by batch size).
2. `--speed`: wall time of whole runs, each in a fresh process (the idle machine's cores all given to torch), the
   engine as it is (one lane per thread, one thread per model call, fixed batches) against the way it ran before
   (one model call at a time on every thread: `--device` given one CPU lane and the one-thread rule switched off),
   for both families; outputs compared byte for byte at 1 and 2 threads.

    .venv/bin/python bench/determinism.py --facts --speed --out docs/bench/determinism_cpu.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT.parent / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"
MODELS = {"e2diffsr": ROOT / "resources" / "models" / "e2diffsr", "sr3": ROOT / "resources" / "models" / "sr3"}


def facts() -> dict:
    import torch

    from infscene.diffusion.schedule import Schedule
    from infscene.models.e2diffsr.denoiser import LatentPatchDenoiser
    from infscene.models.registry import load_model

    model = load_model(MODELS["e2diffsr"], torch.device("cpu"))
    step = Schedule(model.config.gammas()).respaced(4)[0]
    generator = torch.Generator().manual_seed(0)
    y, cond = torch.randn(8, 4, 32, 32, generator=generator), torch.randn(8, 3, 256, 256, generator=generator)
    report = {}
    for precision in ("fp32", "bf16"):
        denoiser = LatentPatchDenoiser(model, 4.0, precision)
        torch.set_num_threads(1)
        reference = denoiser.posterior_mean(y[:4], cond[:4], step)[0]
        rows = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch in (1, 2, 3, 4, 8):
                first = denoiser.posterior_mean(y[:batch], cond[:batch], step)[0]
                rows[f"{threads}_threads_batch_{batch}"] = float((first - reference).abs().max())
        report[precision] = rows
    return report


RUN = """
import sys, time, torch
from infscene.execution import determinism, devices
from infscene.plan import SROptions
from infscene.run import super_resolve
style, model, out, threads, scale = sys.argv[1:6]
torch.set_num_threads(int(threads))
if style == "before":  # one lane on every thread, as the engine ran before the one-thread rule
    import contextlib
    from infscene import plan as plan_module, run as run_module
    one_lane = lambda spec: [torch.device("cpu")]
    plan_module.resolve_devices = one_lane
    run_module.one_thread_per_call = contextlib.nullcontext
    plan_module.one_thread_per_call = contextlib.nullcontext
start = time.perf_counter()
super_resolve(sys.argv[6], out, SROptions(scale=float(scale), bands=[1, 2, 3], model_dir=model, checkpoint=False,
                                          precision=sys.argv[7]))
print(time.perf_counter() - start)
"""


def timed_run(style: str, family: str, out: Path, threads: int, scale: int, source: Path, precision: str) -> float:
    result = subprocess.run([sys.executable, "-c", RUN, style, str(MODELS[family]), str(out), str(threads), str(scale),
                             str(source), precision], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return float(result.stdout.strip().splitlines()[-1])


def read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read()


def naip_crop(folder: Path, side: int) -> Path:
    """The top-left side x side pixels of the NAIP scene, as a GeoTIFF of their own."""
    import rasterio
    from rasterio.windows import Window

    path = folder / f"crop_{side}.tif"
    with rasterio.open(NAIP) as ds:
        window = Window(0, 0, side, side)
        profile = {**ds.profile, "width": side, "height": side, "transform": ds.window_transform(window)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(ds.read(window=window))
    return path


def speed(args: argparse.Namespace) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for family, precision in (("e2diffsr", "fp32"), ("e2diffsr", "bf16"), ("sr3", "fp32")):
            if family == "sr3" and args.no_sr3:
                continue
            crop = args.sr3_crop if family == "sr3" else args.crop
            source = naip_crop(work, crop)
            seconds = {}
            for style in ("before", "now"):
                for threads in (1, 2):
                    out = work / f"{family}_{precision}_{style}_{threads}.tif"
                    seconds[(style, threads)] = min(timed_run(style, family, out, threads, args.scale, source, precision)
                                                    for _ in range(args.repeats))
            equal_now = bool(np.array_equal(read(work / f"{family}_{precision}_now_1.tif"),
                                            read(work / f"{family}_{precision}_now_2.tif")))
            equal_before = bool(np.array_equal(read(work / f"{family}_{precision}_before_1.tif"),
                                               read(work / f"{family}_{precision}_before_2.tif")))
            row = {"family": family, "precision": precision, "input_px": crop, "scale": args.scale,
                   "before_2_threads_s": round(seconds[("before", 2)], 2), "now_2_threads_s": round(seconds[("now", 2)], 2),
                   "cost": round(seconds[("now", 2)] / seconds[("before", 2)] - 1.0, 3),
                   "before_1_thread_s": round(seconds[("before", 1)], 2), "now_1_thread_s": round(seconds[("now", 1)], 2),
                   "bytes_equal_1_vs_2_threads_now": equal_now, "bytes_equal_1_vs_2_threads_before": equal_before}
            print(json.dumps(row))
            rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--facts", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--crop", type=int, default=160, help="input pixels a side of the timed NAIP crop (default %(default)s)")
    p.add_argument("--sr3-crop", type=int, default=48, help="the same for SR3, 50 steps (default %(default)s)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-sr3", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    report: dict = {}
    if args.facts:
        report["facts"] = facts()
        print(json.dumps(report["facts"]))
    if args.speed:
        report["speed"] = speed(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
