"""Scale-out on Dask (issue 10): speed-up from 1 to N workers, RAM per worker and on the client as the scene
grows, and the bytes moved through the run store per reverse step.

    .venv/bin/python bench/scaleout.py efficiency --warm --families e2diffsr --sizes 4 16 --out docs/bench/scaleout_efficiency_warm_e2diffsr_cpu.json
    .venv/bin/python bench/scaleout.py efficiency --warm --families sr3 --sizes 4 --out docs/bench/scaleout_efficiency_warm_sr3_cpu.json
    .venv/bin/python bench/scaleout.py memory --out docs/bench/scaleout_memory_cpu.json
    .venv/bin/python bench/scaleout.py traffic --sizes 2 --out docs/bench/scaleout_traffic_cpu.json
    .venv/bin/python bench/scaleout.py costs --out docs/bench/scaleout_costs_cpu.json
    .venv/bin/python bench/scaleout.py gigapixel --out docs/bench/scaleout_gigapixel_plan.json

The scene is the real NAIP of ../shared/data/scenes/naip_ND_5m (2010, 934x723, 5 m), super-resolved 8x
(inside the models' trained range); scenes larger than it are a 2x2 mosaic of it written to a temporary
GeoTIFF (the content does not matter for memory and traffic). Each run is the `infscene sr` command in a fresh
process with `--dask` pointed at a LocalCluster this script starts (worker processes of 1 thread), as a user
runs against their own cluster; the cluster's start is not timed.

- efficiency: wall time of the whole command, of its sampling (first to last progress event: the model work),
  of what comes before (start-up, imports, the plan, the input's statistics) and after (writing the output) with 1
  and with 2 workers, for e2diffsr at its defaults and SR3 with a few steps; the outputs must be bitwise equal.
- memory: peak RssAnon (the RAM a process really holds; memory-mapped file pages are left out) of the client
  and of each worker, for outputs of about 1, 4, 16 and 64 MP.
- traffic: read_chars + write_chars (/proc/PID/io: bytes through read and write calls, page cache included) of
  the workers and the client, for the same scene run with 1 and with 4 reverse steps: the difference over 3
  steps is what one step moves, per output megapixel.
- costs: seconds (one thread) and GFLOP per unit of model work, for the 1-gigapixel plan.
- gigapixel: the plan for a 1-gigapixel output on 8 and 64 workers, computed from the engine's plan and the
  three measured files above (see `gigapixel`).

Take the timings on an idle machine: a figure measured beside other work is not a figure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

import numpy as np
import rasterio
from distributed import Client, LocalCluster

if TYPE_CHECKING:
    from infscene.plan import SRPlan

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"
MODELS = ROOT / "resources" / "models"
SCALE = 8.0
PLAN_SCALE = 4.0  # the 1-gigapixel plan's scale (Planet 3 m -> 0.75 m)


def mosaic(folder: Path) -> Path:
    """The NAIP scene tiled 2x2 into one GeoTIFF (1868 x 1446 pixels), for outputs beyond the scene's own size."""
    out = folder / "naip_2x2.tif"
    with rasterio.open(SCENE) as src:
        data = src.read()
        profile = src.profile | {"width": 2 * src.width, "height": 2 * src.height, "tiled": True,
                                 "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(np.tile(data, (1, 2, 2)))
    return out


def window_bounds(scene: Path, megapixels: float) -> list[float]:
    """Bounds of a centred square window whose SCALE x output has about this many megapixels."""
    with rasterio.open(scene) as ds:
        side = round(math.sqrt(megapixels * 1e6) / SCALE)
        if side > min(ds.width, ds.height):
            raise SystemExit(f"{scene.name} is too small for {megapixels} MP at {SCALE}x")
        row, col = (ds.height - side) // 2, (ds.width - side) // 2
        left, top = ds.xy(row, col, offset="ul")
        size = side * ds.res[0]
        return [left, top - size, left + size, top]


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _io_chars(pid: int) -> int:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


class PeakRss(threading.Thread):
    """Peak RssAnon (kB) of each of a set of processes, sampled every 50 ms."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = {name: 0 for name in pids}
        self.running = True

    def run(self) -> None:
        while self.running:
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], _status_kb(pid, "RssAnon"))
            time.sleep(0.05)


def worker_pids(client: Client) -> dict[str, int]:
    return {f"worker {i}": pid for i, pid in enumerate(client.run(os.getpid).values())}


def run_command(scene: Path, output: Path, bounds: list[float], address: str, extra: list[str],
                watch: Optional[dict[str, int]] = None) -> dict:
    """One `infscene sr` run against the cluster: wall times, peak RSS (client and `watch`), io chars."""
    cmd = [sys.executable, "-m", "infscene", "sr", str(scene), str(output), "--scale", str(SCALE), "--bands", "1,2,3",
           "--bounds", *map(str, bounds), "--dask", address, "--progress", "json", "--no-checkpoint", *extra]
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = PeakRss({"client": process.pid, **(watch or {})})
    peaks.start()
    io_before = {name: _io_chars(pid) for name, pid in (watch or {}).items()}
    first = last = done = None
    client_io = 0
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "progress":
            now = time.perf_counter()
            first = first or now
            last = now
        if event["event"] in ("done", "error"):
            done = time.perf_counter()
            client_io = _io_chars(process.pid)
    process.wait()
    wall = time.perf_counter() - start
    peaks.running = False
    peaks.join()
    if process.returncode:
        raise SystemExit(f"infscene failed: {process.stderr.read()}")
    io = {name: _io_chars(pid) - io_before[name] for name, pid in (watch or {}).items()}
    with rasterio.open(output) as ds:
        megapixels = ds.width * ds.height / 1e6
    return {"output_mp": round(megapixels, 3), "wall_s": round(wall, 2),
            "sampling_s": round((last or 0) - (first or 0), 2), "before_sampling_s": round((first or start) - start, 2),
            "writing_s": round((done or last or 0) - (last or 0), 2), "peak_rss_mb": {k: round(v / 1024, 1) for k, v in peaks.peak.items()},
            "io_chars_workers": sum(io.values()), "io_chars_client": client_io}


def _warm_up() -> None:
    import infscene.plan  # noqa: F401 - torch, rasterio, zarr: what a running cluster's workers have loaded


@contextmanager
def cluster(workers: int) -> Iterator[Client]:
    """A LocalCluster of `workers` processes of 1 thread, warmed up (the engine imported) as a running cluster is."""
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as local, \
            Client(local) as client:
        client.run(_warm_up)
        yield client


EFFICIENCY_METHODS = {
    "e2diffsr": ("e2diffsr (defaults: vcf, 4 steps)", ["--model", str(MODELS / "e2diffsr")]),
    "sr3": ("sr3 (vcf, 2 steps)", ["--model", str(MODELS / "sr3"), "--steps", "2"]),
}


def efficiency(tmp: Path, sizes: list[float], families: list[str], warm: bool) -> list[dict]:
    """Each method and size with 1 and with 2 workers on a new cluster; `warm`: timed on the cluster's second run of
    the command, as a long-lived cluster's workers run (the model loaded, the kernels for each shape prepared)."""
    rows = []
    for megapixels in sizes:
        bounds = window_bounds(SCENE, megapixels)
        for name, extra in (EFFICIENCY_METHODS[family] for family in families):
            timed = {}
            for workers in (1, 2):
                with cluster(workers) as client:
                    out = tmp / f"eff_{workers}.tif"
                    if warm:
                        run_command(SCENE, out, bounds, client.scheduler.address, extra)
                    timed[workers] = run_command(SCENE, out, bounds, client.scheduler.address, extra)
            with rasterio.open(tmp / "eff_1.tif") as a, rasterio.open(tmp / "eff_2.tif") as b:
                equal = bool(np.array_equal(a.read(), b.read()))
            rows.append({"method": name, "output_mp": timed[1]["output_mp"], "one_worker": timed[1], "two_workers": timed[2],
                         "speedup_wall": round(timed[1]["wall_s"] / timed[2]["wall_s"], 3),
                         "speedup_sampling": round(timed[1]["sampling_s"] / timed[2]["sampling_s"], 3),
                         "outputs_bitwise_equal": equal, "workers": "warm" if warm else "new"})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def memory(tmp: Path, sizes: list[float]) -> list[dict]:
    big = mosaic(tmp)
    rows = []
    with cluster(2) as client:
        for megapixels in sizes:
            scene = SCENE if megapixels <= 40 else big
            client.restart()  # fresh worker processes: each size's peak is its own
            client.run(_warm_up)
            row = run_command(scene, tmp / "mem.tif", window_bounds(scene, megapixels), client.scheduler.address,
                              ["--model", str(MODELS / "e2diffsr")], watch=worker_pids(client))
            rows.append({"method": "e2diffsr (defaults)", **row})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def traffic(tmp: Path, megapixels: float) -> list[dict]:
    rows = []
    bounds = window_bounds(SCENE, megapixels)
    for name, model, steps in (("e2diffsr", "e2diffsr", (1, 4)), ("sr3", "sr3", (1, 4))):
        runs = {}
        with cluster(2) as client:
            for k in steps:
                runs[k] = run_command(SCENE, tmp / "traffic.tif", bounds, client.scheduler.address,
                                      ["--model", str(MODELS / model), "--steps", str(k)], watch=worker_pids(client))
        per_step = (runs[steps[1]]["io_chars_workers"] - runs[steps[0]]["io_chars_workers"]) / (steps[1] - steps[0])
        mp = runs[steps[1]]["output_mp"]
        rows.append({"method": name, "output_mp": mp, "runs": runs, "worker_bytes_per_step": int(per_step),
                     "worker_bytes_per_step_per_output_mp": int(per_step / mp)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def costs() -> list[dict]:
    """Seconds and GFLOP per unit of model work on one thread of this CPU: an SR3 patch (256 px) and an e2diffsr latent
    patch (32 latent px, the 256 output px above it), each in a batch of 4, and an e2diffsr decode tile (1024 output px
    of core at 4x, with its margins): what the 1-gigapixel plan in docs/scale-out.md is computed from."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from infscene.models.e2diffsr.denoiser import LatentPatchDenoiser
    from infscene.models.e2diffsr.run import typical_tile
    from infscene.models.registry import load_model
    from infscene.diffusion.schedule import Schedule
    from infscene.models.sr3.denoiser import PatchDenoiser

    torch.set_num_threads(1)
    sr3, e2 = load_model(MODELS / "sr3"), load_model(MODELS / "e2diffsr")
    units = {  # name: (family, kind, output pixels per side, calls per timing, call)
        "sr3 patch 256 px": ("sr3", "patch", 256, 4, lambda: PatchDenoiser(sr3, 4.0).posterior_mean(
            torch.randn(4, 3, 256, 256), torch.randn(4, 3, 256, 256), Schedule.paper().respaced(50)[10])),
        "e2diffsr latent patch 32 px": ("e2diffsr", "patch", 256, 4, lambda: LatentPatchDenoiser(e2, 4.0).posterior_mean(
            torch.randn(4, 4, 32, 32), torch.randn(4, 3, 256, 256), Schedule(e2.config.gammas()).respaced(4)[1])),
        "e2diffsr decode tile 1024 px at 4x": ("e2diffsr", "tile", 1024, 1, typical_tile(e2, PLAN_SCALE)),
    }
    rows = []
    for name, (family, kind, side, count, call) in units.items():
        with FlopCounterMode(display=False) as flops:
            call()
        start = time.perf_counter()
        for _ in range(3):
            call()
        seconds = (time.perf_counter() - start) / 3 / count
        rows.append({"unit": name, "family": family, "kind": kind, "output_side_px": side,
                     "seconds_one_thread": round(seconds, 4), "gflop": round(flops.get_total_flops() / count / 1e9, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


GIGAPIXEL_OUTPUT_SIDE = 31_623  # a square output of 1.0 gigapixel


def gigapixel_plan(family: str) -> SRPlan:
    """The engine's own plan (on Dask, the family's defaults) for a square 1-gigapixel output at PLAN_SCALE, from a
    sparse GeoTIFF of that input size in memory (no pixel is read to plan)."""
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    from infscene.models.registry import check_model
    from infscene.plan import SROptions, make_plan

    side = math.ceil(GIGAPIXEL_OUTPUT_SIDE / PLAN_SCALE)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "tiled": True,
               "sparse_ok": True, "crs": "EPSG:32614", "transform": from_origin(500_000, 5_200_000, 3.0, 3.0)}
    options = SROptions(scale=PLAN_SCALE, model_dir=MODELS / family, dask="local:1")
    with MemoryFile() as memory:
        with memory.open(**profile):
            pass
        with memory.open() as ds:
            return make_plan(ds, None, options, check_model(options.model_dir))


def gigapixel(measured: Path, gpu_tflops: float, link_gbit: float, task_ms: float) -> list[dict]:
    """A 1-gigapixel output on 8 and 64 workers, computed: the work from the engine's plan and the measured cost per
    unit (costs), store traffic per step from the measured bytes per output megapixel (traffic), RAM per worker and
    the client's output writing from the largest measured run (memory). A step takes as long as its slowest part:
    the model work spread over the workers, the scheduler's overhead per task (Dask's rule of thumb), or the store
    traffic through the workers' links; the client writes the output alone after the last step. GPU throughput is
    an assumption (`--gpu-tflops`) until measured on a GPU; the CPU rows use the measured per-thread seconds."""
    from infscene.execution.scaleout import fuse_region_count, fuse_region_side

    load = lambda name: json.loads((measured / f"scaleout_{name}_cpu.json").read_text())["rows"]  # noqa: E731
    costs, traffic_rows, memory_rows = load("costs"), load("traffic"), load("memory")
    largest = max(memory_rows, key=lambda row: row["output_mp"])
    writing_s_per_mp = largest["writing_s"] / largest["output_mp"]
    worker_peak_mb = max(v for k, v in largest["peak_rss_mb"].items() if k != "client")
    rows = []
    for family in ("sr3", "e2diffsr"):
        plan = gigapixel_plan(family)
        out_mp = plan.height * plan.width / 1e6
        patch_side = plan.grid.patch * plan.cond_factor
        unit = {row["kind"]: row for row in costs if row["family"] == family}
        patch_area = (patch_side / unit["patch"]["output_side_px"]) ** 2
        step_gflop = len(plan.grid) * unit["patch"]["gflop"] * patch_area
        step_thread_s = len(plan.grid) * unit["patch"]["seconds_one_thread"] * patch_area
        tile = unit.get("tile", {"gflop": 0.0, "seconds_one_thread": 0.0})
        decode_gflop, decode_thread_s = plan.finishing_units * tile["gflop"], plan.finishing_units * tile["seconds_one_thread"]
        bytes_per_step = next(r for r in traffic_rows if r["method"] == family)["worker_bytes_per_step_per_output_mp"] * out_mp
        client_s = writing_s_per_mp * out_mp
        state = (plan.grid.height, plan.grid.width, (plan.grid.patch,) * 2)  # the state canvas, chunked by the patch
        for workers in (8, 64):
            fuse_tasks = fuse_region_count(*state, fuse_region_side(*state, workers))
            for device, batch in (("gpu (assumed %g TFLOP/s)" % gpu_tflops, 32), ("cpu, 1 thread (measured)", 4)):
                if device.startswith("gpu"):
                    step_s, decode_s = step_gflop / 1e3 / gpu_tflops / workers, decode_gflop / 1e3 / gpu_tflops / workers
                else:
                    step_s, decode_s = step_thread_s / workers, decode_thread_s / workers
                tasks = math.ceil(len(plan.grid) / batch) + fuse_tasks
                scheduler_s = tasks * task_ms / 1e3
                traffic_s = bytes_per_step / (workers * link_gbit * 1e9 / 8)
                bound = max(step_s, scheduler_s, traffic_s)
                total = plan.steps * bound + decode_s + plan.finishing_units * task_ms / 1e3 + client_s
                rows.append({
                    "family": family, "workers": workers, "device": device, "batch_size": batch,
                    "output_mp": round(out_mp, 1), "patches": len(plan.grid), "steps": plan.steps, "decode_tiles": plan.finishing_units,
                    "model_tflop": round((plan.steps * step_gflop + decode_gflop) / 1e3, 1),
                    "model_s_per_step": round(step_s, 2), "scheduler_s_per_step": round(scheduler_s, 2),
                    "traffic_gb_per_step": round(bytes_per_step / 1e9, 2), "traffic_s_per_step": round(traffic_s, 2),
                    "step_bound_by": ("model", "scheduler", "traffic")[[step_s, scheduler_s, traffic_s].index(bound)],
                    "decode_s": round(decode_s, 1), "client_writing_s": round(client_s, 1), "total_h": round(total / 3600, 2),
                    "run_store_gb": round(plan.checkpoint_bytes / 1e9, 1), "worker_ram_mb_measured": worker_peak_mb,
                    "client_ram_mb_measured": largest["peak_rss_mb"]["client"]})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["efficiency", "memory", "traffic", "costs", "gigapixel"])
    p.add_argument("--sizes", type=float, nargs="+", help="output megapixels (efficiency: 4 16; memory: 1 4 16 64)")
    p.add_argument("--families", nargs="+", choices=sorted(EFFICIENCY_METHODS), default=sorted(EFFICIENCY_METHODS),
                   help="efficiency: the model families timed at every size")
    p.add_argument("--measured", type=Path, default=ROOT / "docs" / "bench",
                   help="gigapixel: the folder of the costs, traffic and memory results")
    p.add_argument("--gpu-tflops", type=float, default=10.0, help="gigapixel: assumed FP32 TFLOP/s a GPU worker sustains")
    p.add_argument("--link-gbit", type=float, default=10.0, help="gigapixel: each worker's network link to the store, Gbit/s")
    p.add_argument("--task-ms", type=float, default=1.0, help="gigapixel: scheduler overhead per task, ms")
    p.add_argument("--warm", action="store_true", help="efficiency: time each cluster's second run of the command")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.what == "efficiency":
            rows = efficiency(tmp, args.sizes or [4, 16], args.families, args.warm)
        elif args.what == "memory":
            rows = memory(tmp, args.sizes or [1, 4, 16, 64])
        elif args.what == "traffic":
            rows = traffic(tmp, (args.sizes or [4])[0])
        elif args.what == "costs":
            rows = costs()
        else:
            rows = gigapixel(args.measured, args.gpu_tflops, args.link_gbit, args.task_ms)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"what": args.what, "cpu": os.cpu_count(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
