"""Model calls under each glibc setting of allocator.py (docs/scale-out.md, "Found and fixed while measuring").

    .venv/bin/python bench/allocator.py   # runs each setting in a fresh process: default, streaming, model-work

Per setting: wall and kernel seconds and minor page faults per call, on one thread, for an SR3 batch of 4 patches of
128 px and an e2diffsr decode tile (1024 output px at 4x). "streaming" is what Dask's nanny gives its workers
(MALLOC_TRIM_THRESHOLD_=65536) and what the command line set for itself before the fix. Take it on an idle machine.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "resources" / "models"
SETTINGS = ("default", "streaming", "model-work")


def measure(setting: str) -> list[dict]:
    import torch

    from infscene.execution import allocator
    from infscene.models.e2diffsr.run import typical_tile
    from infscene.models.registry import load_model
    from infscene.diffusion.schedule import Schedule
    from infscene.models.sr3.denoiser import PatchDenoiser

    {"streaming": allocator.for_streaming, "model-work": allocator.for_model_work}.get(setting, lambda: None)()
    torch.set_num_threads(1)
    sr3, e2 = load_model(MODELS / "sr3"), load_model(MODELS / "e2diffsr")
    x, cond, step = torch.randn(4, 3, 128, 128), torch.randn(4, 3, 128, 128), Schedule.paper().respaced(50)[10]
    calls = {"sr3 batch of 4 x 128 px": (10, lambda: PatchDenoiser(sr3, 4.0).posterior_mean(x, cond, step)),
             "e2diffsr decode tile 1024 px at 4x": (3, typical_tile(e2, 4.0))}
    rows = []
    for name, (repeats, call) in calls.items():
        call()
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(repeats):
            call()
        after = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"setting": setting, "call": name, "wall_s": round((time.perf_counter() - start) / repeats, 3),
                     "kernel_s": round((after.ru_stime - before.ru_stime) / repeats, 3),
                     "page_faults": (after.ru_minflt - before.ru_minflt) // repeats})
    return rows


def main() -> None:
    if len(sys.argv) == 2:
        print(json.dumps(measure(sys.argv[1])))
        return
    for setting in SETTINGS:  # a fresh process each: a setting cannot be undone inside one
        out = subprocess.run([sys.executable, __file__, setting], capture_output=True, text=True, check=True).stdout
        for row in json.loads(out.splitlines()[-1]):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
