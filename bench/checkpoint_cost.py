"""What a checkpoint that proves itself costs (issue 22): its checksums on write and on resume, and the input's
content hash, each as a share of a run's time, and the content hash per gigapixel of input.

1. Runs: `super_resolve` in this process on a NAIP crop (both families at their defaults), with the checkpoint on;
   the engine's own functions are wrapped to add up their time: `store_files` (the sha256 of the state arrays'
   files, for the manifest written after every step) and `window_sha256` (the input window's content hash, once per
   run). Resume: the finished run's checkpoint is kept (its removal switched off) and `Checkpoint._verified`, the
   check a `--resume` makes before reading the store, is timed on it.
2. Content hash per GP: `window_sha256` over a large tiled, deflated RGB GeoTIFF cut from the real NAIP scene
   (mirrored tiles, so the decoder meets real content), against a plain read of the same window in the same blocks:
   what the hash adds to the read GDAL must make anyway.

Take it on an idle machine (no training beside it): every figure is a time.

    .venv/bin/python bench/checkpoint_cost.py --out docs/bench/checkpoint_cost_cpu.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import rasterio
from rasterio.windows import Window

from infscene.execution import checkpoint as run_checkpoint
from infscene.plan import SROptions, plan_run
from infscene import run as engine_run
from infscene.raster.blocks import blocks, pixels_in, window_of
from infscene.raster.io import DIGEST_BLOCK_BYTES, window_sha256
from infscene.run import super_resolve

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT.parent / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"
MODELS = {"e2diffsr": ROOT / "resources" / "models" / "e2diffsr", "sr3": ROOT / "resources" / "models" / "sr3"}


class Stopwatch:
    """Adds up the wall time of the calls of the functions it wraps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1
        return timed


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


def crop(source: Path, side: int, folder: Path) -> Path:
    """The centre `side` x `side` input pixels of the scene, as a file of their own."""
    with rasterio.open(source) as ds:
        window = Window((ds.width - side) // 2, (ds.height - side) // 2, side, side)
        profile = {**ds.profile, "width": side, "height": side, "transform": ds.window_transform(window)}
        data = ds.read(window=window)
    path = folder / f"crop{side}.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return path


def run_costs(family: str, side: int, folder: Path, scene: Path = NAIP) -> dict[str, Any]:
    """One run of `family` at its defaults, 4x, on the centre `side` x `side` pixels of `scene`, with its checkpoint."""
    folder.mkdir()
    source = crop(scene, side, folder)
    watch = Stopwatch()
    output = folder / f"{family}.tif"
    options = SROptions(scale=4.0, bands=[1, 2, 3], model_dir=MODELS[family], work_dir=folder)
    kept = plan_run(source, options, output).checkpoint_dir  # where the run's checkpoint will be (its key)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(run_checkpoint, "store_files", watch.wrap("store_files", run_checkpoint.store_files)))
        stack.enter_context(patched(engine_run, "window_sha256", watch.wrap("window_sha256", engine_run.window_sha256)))
        stack.enter_context(patched(run_checkpoint.Checkpoint, "remove", run_checkpoint.Checkpoint.release))
        start = time.perf_counter()
        super_resolve(source, output, options)
        run_seconds = time.perf_counter() - start
    store_bytes = sum(p.stat().st_size for p in (kept / "store").rglob("*") if p.is_file())
    start = time.perf_counter()
    run_checkpoint.Checkpoint._verified(kept)
    resume_check = time.perf_counter() - start
    with rasterio.open(output) as ds:
        output_mp = ds.width * ds.height / 1e6
    write = watch.seconds.get("store_files", 0.0)
    content = watch.seconds.get("window_sha256", 0.0)
    return {
        "family": family, "input_px": [side, side], "output_mp": round(output_mp, 3), "run_s": round(run_seconds, 3),
        "manifests_written": watch.calls.get("store_files", 0), "checkpoint_store_mb": round(store_bytes / 1e6, 2),
        "checksums_on_write_s": round(write, 4), "checksums_on_write_share": round(write / run_seconds, 5),
        "content_hash_s": round(content, 4), "content_hash_share": round(content / run_seconds, 5),
        "checksums_on_resume_s": round(resume_check, 4), "checksums_on_resume_share": round(resume_check / run_seconds, 5),
    }


def large_raster(side: int, folder: Path) -> Path:
    """A side x side RGB GeoTIFF (512-px tiles, deflate, as large orthophotos are stored) tiled from the NAIP scene,
    every other copy mirrored so tile borders do not repeat."""
    with rasterio.open(NAIP) as ds:
        scene = ds.read([1, 2, 3])
        profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "crs": ds.crs,
                   "transform": ds.transform, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    h, w = scene.shape[1:]
    path = folder / f"large{side}.tif"
    with rasterio.open(path, "w", **profile) as out:
        for row in range(0, side, h):
            for col in range(0, side, w):
                piece = scene[:, :, ::-1] if (row // h + col // w) % 2 else scene
                window = Window(col, row, min(w, side - col), min(h, side - row))
                out.write(piece[:, : window.height, : window.width], window=window)
    return path


def content_hash_per_gp(side: int, folder: Path) -> dict[str, Any]:
    path = large_raster(side, folder)
    gp = side * side / 1e9
    with rasterio.open(path) as ds:
        window = Window(0, 0, side, side)
        start = time.perf_counter()
        for rows, cols in blocks(side, side, pixels_in(DIGEST_BLOCK_BYTES, 3)):
            ds.read([1, 2, 3], window=window_of(window, rows, cols))
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        window_sha256(ds, window, [1, 2, 3], None)
        hash_s = time.perf_counter() - start
    return {"input_px": [side, side], "file_mb": round(path.stat().st_size / 1e6, 1), "gp": round(gp, 4),
            "read_s": round(read_s, 3), "read_and_hash_s": round(hash_s, 3),
            "hash_s_per_gp": round(hash_s / gp, 1), "read_s_per_gp": round(read_s / gp, 1),
            "hash_minutes_per_100_gp": round(hash_s / gp * 100 / 60, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e2diffsr-side", type=int, default=256, help="input pixels of the e2diffsr run's crop")
    parser.add_argument("--sr3-side", type=int, default=48, help="input pixels of the SR3 run's crop (50 steps)")
    parser.add_argument("--large-side", type=int, default=8192, help="side of the raster for the content hash")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="checkpoint-cost-") as tmp:
        folder = Path(tmp)
        runs = [run_costs("e2diffsr", args.e2diffsr_side, folder / "e2diffsr"),
                run_costs("sr3", args.sr3_side, folder / "sr3")]
        result = {"runs": runs, "content_hash": content_hash_per_gp(args.large_side, folder)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
