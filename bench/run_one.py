"""Run one super-resolution and print its wall time and peak memory as JSON (used by speed_memory.py and
quality.py, which run each super-resolution in a fresh process so that peaks do not carry over).

Peak memory is sampled from /proc/self/status every 50 ms: RssAnon is the RAM the run really needs;
RssFile counts pages of the memory-mapped canvases, which the kernel can drop and re-read at will.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import torch

from infscene.diffusion.fusion import FusionMode
from infscene.plan import plan_run, SROptions
from infscene.run import super_resolve


class PeakMemory(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.running = True

    def run(self) -> None:
        while self.running:
            for line in Path("/proc/self/status").read_text().splitlines():
                key = line.split(":")[0]
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]))
            time.sleep(0.05)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--scale", type=float, required=True)
    p.add_argument("--bounds", type=float, nargs=4)
    p.add_argument("--mode", default="vcf")
    p.add_argument("--steps", type=int, help="reverse steps (default: the model family's)")
    p.add_argument("--model", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-lr-consistency", action="store_true")
    p.add_argument("--detail", type=float,
                   help="e2diffsr: 0 the regression branch alone .. 1 the full model (default: the model's)")
    p.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (as infscene sr)")
    p.add_argument("--self-ensemble", action="store_true", help="e2diffsr at --detail 0: the mean of 8 decodes (as infscene sr)")
    args = p.parse_args()
    extra = {} if args.steps is None else {"steps": args.steps}
    options = SROptions(scale=args.scale, bounds=args.bounds, mode=FusionMode(args.mode), model_dir=args.model,
                        device=args.device, batch_size=args.batch_size, bands=[1, 2, 3], seed=args.seed,
                        lr_consistency=not args.no_lr_consistency, detail=args.detail, precision=args.precision,
                        self_ensemble=args.self_ensemble, **extra)
    plan = plan_run(args.input, options)
    monitor = PeakMemory()
    monitor.start()
    start = time.perf_counter()
    super_resolve(args.input, args.output, options)
    wall = time.perf_counter() - start
    monitor.running = False
    monitor.join()
    gpus = range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    gpu = max((torch.cuda.max_memory_allocated(i) / 1024**2 for i in gpus), default=None)  # per device: what must stay flat
    print(json.dumps({
        "mode": args.mode, "output_mp": round(plan.height * plan.width / 1e6, 2), "patches": len(plan.grid),
        "steps": plan.steps, "detail": plan.family_plan.detail, "self_ensemble": plan.family_plan.self_ensemble, "precision": plan.precision, "wall_s": round(wall, 1), "s_per_patch_step": round(wall / max(plan.total_work, 1), 4),
        "mp_per_s": float(f"{plan.height * plan.width / 1e6 / wall:.4g}"),
        "peak_anon_mb": round(monitor.peak["RssAnon"] / 1024), "peak_file_mb": round(monitor.peak["RssFile"] / 1024),
        "gpu_peak_mb": None if gpu is None else round(gpu), "device": str(options.device),
    }))


if __name__ == "__main__":
    main()
