"""What "bitwise" means across CPUs (issue 33): one run under each CPU capability torch can be forced to, and a join
of two halves run under different ones.

torch picks its vectorised kernels (tanh, exp, the Box-Muller of randn, ...), oneDNN its convolutions and MKL its
matrix products by the CPU's instruction set at start-up; environment variables force each (MACHINES), so this CPU
runs what a machine without AVX-512, or without AVX2, would. A real NAIP crop (naip_ND_5m) degraded by the scale is super-resolved by the whole `infscene sr` command
in a fresh process per setting, and each output is compared with the avx512 / fp32 one in 8-bit DN (mean and largest
|difference|, share of bitwise-equal values). Then the left half runs under one setting and the right half under
another (the default margin), as two machines of a mixed Dask cluster or two analysts would, and the step across
their border is compared with the step of one run over the union.

    .venv/bin/python bench/capabilities.py --out docs/bench/capabilities_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from joins import border_step, bounds_of, degraded_centre_crop, read
from quality import write_low_res

# What a CPU without AVX-512 (or without AVX2) would run, forced on this one: torch's own kernels
# (ATEN_CPU_CAPABILITY), oneDNN's convolutions (ONEDNN_MAX_CPU_ISA) and MKL's matrix products (MKL_ENABLE_INSTRUCTIONS)
# each pick theirs by the instruction set.
MACHINES = {
    "avx512": {},
    "avx2 torch kernels only": {"ATEN_CPU_CAPABILITY": "avx2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "sse4.1": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
REFERENCE = ("avx512", "fp32")
SETTINGS = [("avx512", "fp32"), ("avx2 torch kernels only", "fp32"), ("avx2", "fp32"), ("sse4.1", "fp32"),
            ("avx512", "bf16")]  # bf16 is refused where there is no native bf16 (avx2: one line, exit 1)
MIXED_HALVES = [(("avx512", "fp32"), ("avx512", "fp32")),  # the same machine twice: what a split costs by itself
                (("avx512", "fp32"), ("avx2", "fp32")), (("avx512", "fp32"), ("sse4.1", "fp32")),
                (("avx512", "fp32"), ("avx512", "bf16"))]


def run(lr: Path, out: Path, scale: int, setting: tuple[str, str], bounds: tuple[float, ...] | None = None) -> np.ndarray:
    """The whole command in a fresh process, as on the setting's machine."""
    machine, precision = setting
    command = [sys.executable, "-m", "infscene", "sr", str(lr), str(out), "--scale", str(scale), "--seed", "0",
               "--precision", precision, "--no-checkpoint", "--progress", "none"]
    if bounds is not None:
        command += ["--bounds", *map(str, bounds)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **MACHINES[machine]})
    return read(out)


def difference(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a - b)
    return {"mean_abs_dn": round(float(d.mean()), 5), "max_abs_dn": round(float(d.max()), 1),
            "values_differing": int((d > 0).sum()), "values": int(d.size)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--lr-size", type=int, nargs=2, default=[120, 160], metavar=("ROWS", "COLS"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    crop, low = degraded_centre_crop(args.scale, args.lr_size)
    n_r, n_c = args.lr_size
    report: dict = {"input": f"naip_ND_5m centre crop degraded {args.scale}x, LR {n_r}x{n_c}", "scale": args.scale,
                    "reference": "/".join(REFERENCE), "machines": MACHINES, "runs": [], "joins": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lr = work / "lr.tif"
        write_low_res(low, args.scale, lr)
        whole = {s: run(lr, work / f"{s[0].replace(' ', '_')}_{s[1]}.tif", args.scale, s) for s in SETTINGS}
        for setting, values in whole.items():
            row = {"setting": "/".join(setting), **difference(values, whole[REFERENCE])}
            print(json.dumps(row))
            report["runs"].append(row)
        with rasterio.open(lr) as ds:
            halves = [bounds_of(ds, (0, n_r), (0, n_c // 2)), bounds_of(ds, (0, n_r), (n_c // 2, n_c))]
        border = (n_c // 2) * args.scale
        for left, right in MIXED_HALVES:
            mosaic = np.concatenate([run(lr, work / "left.tif", args.scale, left, halves[0]),
                                     run(lr, work / "right.tif", args.scale, right, halves[1])], axis=2)
            union = whole[left]
            steps = {"mosaic": border_step(mosaic, 2, border), "union": border_step(union, 2, border),
                     "truth": border_step(crop.astype(np.float64), 2, border)}
            row = {"left": "/".join(left), "right": "/".join(right), "vs_union_of_left": difference(mosaic, union),
                   "border_step": {k: round(v, 3) for k, v in steps.items()},
                   "step_vs_union": round(steps["mosaic"] / steps["union"] - 1.0, 4)}
            print(json.dumps(row))
            report["joins"].append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
