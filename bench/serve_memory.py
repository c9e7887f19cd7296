"""The live layer's RAM with its in-memory block cache full (serve/tiles.py, MEMORY_BUDGET_BYTES).

A server (`infscene serve`, fresh disk cache) is asked, BATCH blocks at a time, for one max_zoom tile at the centre of
each whole block of a real scene, row by row, until it has made more blocks than the budget holds; each such tile
needs exactly one block, so after n tiles the memory holds the last min(n, budget / block) of them. The server's RSS
is read after each batch and sampled every SAMPLE_S throughout (the peak includes the model's working memory while
a block is made). The same run is then made with a budget of 0 bytes (patched into the server process: only the
block just made is kept): the difference of the two runs' last readings (the RSS settles once the budget is full)
is what the cache itself costs; the rest is the model, the libraries, GDAL's block cache, the allocator's free
heap and the transient arrays of a block run and a tile.

    .venv/bin/python bench/serve_memory.py --overflow 2.1 --out docs/bench/serve_memory_cpu.json  # 8x, 34 blocks: 5 min

Reported: budget_bytes, bytes_per_block (what one block's Patch holds at the scale: float32 RGB and validity over
(block * scale)^2 output pixels), blocks_budget_holds, and per run the RSS when ready, after each batch, the last
and the sampled peak (MiB).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Optional

import mercantile
import psutil
import rasterio
from rasterio.warp import transform

from infscene.plan import SROptions
from infscene.serve.block_runs import read_block
from infscene.serve.source import Source, open_source
from infscene.serve.tiles import MEMORY_BUDGET_BYTES, patch_bytes

SCENE = Path(__file__).resolve().parents[2] / "shared/data/scenes/naip_ND_5m/m_4709963_se_14_1_20100629.tif"
BYTES_PER_OUTPUT_PIXEL = 16  # a Patch: three float32 colour planes and a float32 validity plane (checked on a block)
BATCH = 4  # blocks asked at once (their tiles in flight together, as a view's are)
SAMPLE_S = 0.1
MIB = 1024**2
# The server with its budget replaced: the module's constant is read when the server builds its Tiles.
PATCHED_SERVER = ("import sys; import infscene.serve.tiles as tiles; tiles.MEMORY_BUDGET_BYTES = int(sys.argv[1]); "
                  "from infscene.commands.main import main; sys.exit(main(sys.argv[2:]))")


class Peak(threading.Thread):
    """The highest RSS of a process, sampled every SAMPLE_S until it exits or `running` is cleared."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.running = process, 0, True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(SAMPLE_S)


def block_tiles(scene: Path, block: int, zoom: int, count: int) -> list[mercantile.Tile]:
    """The zoom `zoom` tile at the centre of each of the first `count` whole blocks of `scene`, row by row."""
    with rasterio.open(scene) as ds:
        rows, cols = ds.height // block, ds.width // block
        if rows * cols < count:
            raise SystemExit(f"{scene.name} has {rows * cols} whole blocks of {block} px, fewer than the {count} "
                             "asked for: a lower --overflow, a larger --scale or another --scene")
        centres = [ds.transform * ((c + 0.5) * block, (r + 0.5) * block) for r in range(rows) for c in range(cols)]
        lons, lats = transform(ds.crs, "EPSG:4326", *zip(*centres[:count]))
    return [mercantile.tile(lon, lat, zoom) for lon, lat in zip(lons, lats)]


def drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def fetch(port: int, tile: mercantile.Tile) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{tile.z}/{tile.x}/{tile.y}.png", timeout=600) as response:
        response.read()


def measure(args: argparse.Namespace, source: Source, budget: Optional[int], count: int) -> dict:
    """One server (the default budget, or `budget` bytes) asked for `count` blocks: its RSS along the way (MiB), and
    the bytes of its first block as the server holds it (read back from its cache as the server reads it)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-memory-"))
    serve = ["serve", str(args.scene), "--port", "0", "--scale", str(args.scale), "--block", str(args.block),
             "--cache", str(folder / "cache"), "--progress", "json"]
    command = [sys.executable, "-m", "infscene", *serve] if budget is None else \
        [sys.executable, "-c", PATCHED_SERVER, str(budget), *serve]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        serving = next(json.loads(line) for line in server.stdout if line.startswith('{"event": "serving"'))
        threading.Thread(target=drain, args=(server.stdout,), daemon=True).start()  # the tiles events
        process = psutil.Process(server.pid)
        ready = process.memory_info().rss
        peak = Peak(process)
        peak.start()
        tiles = block_tiles(args.scene, args.block, serving["max_zoom"], count)
        after: list[float] = []
        with ThreadPoolExecutor(BATCH) as pool:
            for start in range(0, count, BATCH):
                list(pool.map(lambda tile: fetch(serving["port"], tile), tiles[start:start + BATCH]))
                after.append(round(process.memory_info().rss / MIB, 1))
        peak.running = False
        peak.join()
        made = len(list(folder.glob("cache/*/blocks/*.tif")))
        block_bytes = patch_bytes(read_block(source, (0, 0), next(folder.glob("cache/*/blocks/0_0.tif"))))
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
    return {"budget_bytes": MEMORY_BUDGET_BYTES if budget is None else budget, "max_zoom": serving["max_zoom"],
            "blocks_made": made, "bytes_per_block": block_bytes, "rss_ready_mib": round(ready / MIB, 1),
            "rss_after_each_batch_mib": after, "rss_last_mib": after[-1], "rss_peak_mib": round(max(peak.peak, ready) / MIB, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", type=Path, default=SCENE, help="the raster served (its whole blocks are asked for)")
    p.add_argument("--scale", type=int, default=8, help="the server's --scale (8: 16 MiB a block, 16 fill the budget)")
    p.add_argument("--block", type=int, default=128, help="the server's --block")
    p.add_argument("--overflow", type=float, default=1.5, help="blocks asked for, in budgets' worth")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    bytes_per_block = (args.block * args.scale) ** 2 * BYTES_PER_OUTPUT_PIXEL
    holds = MEMORY_BUDGET_BYTES // bytes_per_block
    count = math.ceil(args.overflow * MEMORY_BUDGET_BYTES / bytes_per_block)
    source = open_source(args.scene, SROptions(scale=float(args.scale)), args.block)
    full, one_block = measure(args, source, None, count), measure(args, source, 0, count)
    assert full["bytes_per_block"] == bytes_per_block, "a block holds what BYTES_PER_OUTPUT_PIXEL says"
    result = {
        "scene": str(args.scene), "scale": args.scale, "block": args.block, "machine_cpus": psutil.cpu_count(),
        "budget_bytes": MEMORY_BUDGET_BYTES, "bytes_per_block": bytes_per_block, "blocks_budget_holds": holds,
        "blocks_asked": count, "blocks_per_batch": BATCH,
        "budget_full": full, "budget_zero": one_block,
        "cache_share_settled_mib": round(full["rss_last_mib"] - one_block["rss_last_mib"], 1),
        "cache_share_of_peak_mib": round(full["rss_peak_mib"] - one_block["rss_peak_mib"], 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
