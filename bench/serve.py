"""The live layer (`infscene serve`) as QGIS uses it: latency, a full view, cache hits, RAM and CPU, and seams.

A real NAIP scene (the truth) is degraded SCALE times (area average) and served at SCALE, so the layer's
finest zoom can be compared with the truth it should approach. The server runs as a subprocess on a fresh
cache; the view is a WIDTH x HEIGHT px window at max_zoom over the scene's centre, all its tiles asked at
once through 6 connections (what Qt opens per host), then panned half a view east. Reported:

- first_tile_s: the first tile of the cold view to arrive (often a transparent one beyond the data);
  first_data_tile_s: the first that shows the source; fill_view_s: the last (the view complete)
- cache_hit_ms: median latency of the same tiles asked again, one at a time (served from the disk cache)
- pan_peak_rss_mb, pan_cpu_percent_mean / _peak: the server process while filling and panning
  (100 = one core busy)
- tile_border_step / truth_tile_border_step: the mean absolute step across tile borders divided by the mean
  step anywhere (raster/metrics.seam_score: 1 = no seam), over pixels valid on both sides, for the served
  view and for the truth warped onto the same tiles the same way (bilinear)
- block_border_step / truth_block_border_step: the same across the borders of the super-resolved blocks, on
  their own grid (which is the truth's), where a seam between two model runs would show; block_lattice_step /
  truth_block_lattice_step: the same on the other lines in the borders' phase of the latent and the input pixel,
  the reference a border (one or two in a view) is read against

Run it on an idle machine; figures from a loaded one say nothing about speed:

    .venv/bin/python bench/serve.py --out docs/bench/serve.json
    .venv/bin/python bench/serve.py --crop 512 --width 512 --height 512   # a quick functional check
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Optional

import aiohttp
import cv2
import mercantile
import numpy as np
import psutil
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from infscene.models.e2diffsr.network import LATENT_FACTOR
from infscene.serve.zooms import TILE_SIZE, WEB_MERCATOR

from quality import seams

SCENE = Path(__file__).resolve().parents[2] / "shared/data/scenes/naip_ND_5m/m_4709963_se_14_1_20100629.tif"
CONNECTIONS = 6  # Qt's network access manager opens at most 6 connections per host
SAMPLE_S = 0.2


def write_truth_and_low(scene: Path, crop: int, scale: int, folder: Path) -> tuple[Path, Path]:
    """The centre crop of the scene's RGB (the truth) and its SCALE-times area average (the source served)."""
    with rasterio.open(scene) as ds:
        side = min(crop, ds.width, ds.height) // scale * scale
        window = Window((ds.width - side) // 2, (ds.height - side) // 2, side, side)
        truth, transform, crs = ds.read([1, 2, 3], window=window), ds.window_transform(window), ds.crs
    low = np.stack([cv2.resize(band, (side // scale, side // scale), interpolation=cv2.INTER_AREA) for band in truth])
    paths = folder / "truth.tif", folder / "low.tif"
    for path, data, pixel in ((paths[0], truth, transform), (paths[1], low, transform * transform.scale(scale))):
        profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=3, dtype="uint8", crs=crs,
                       transform=pixel)
        with rasterio.open(path, "w", **profile) as out:
            out.write(data)
    return paths


def view_tiles(source: Path, zoom: int, width: int, height: int, shift_x: int = 0) -> list[mercantile.Tile]:
    """The tiles of a width x height px view at `zoom` centred on the source, moved `shift_x` px east."""
    with rasterio.open(source) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    x, y = mercantile.xy((west + east) / 2, (south + north) / 2)
    pixel = 2 * np.pi * 6378137.0 / TILE_SIZE / 2**zoom
    x += shift_x * pixel
    left, right, bottom, top = x - width / 2 * pixel, x + width / 2 * pixel, y - height / 2 * pixel, y + height / 2 * pixel
    lon0, lat0 = mercantile.lnglat(left, bottom)
    lon1, lat1 = mercantile.lnglat(right - 1e-6, top - 1e-6)
    return list(mercantile.tiles(lon0, lat0, lon1, lat1, [zoom]))


class Monitor(threading.Thread):
    """Peak RSS and CPU of a process, sampled every SAMPLE_S while `recording` is set."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.recording = threading.Event()
        self.rss: list[float] = []
        self.cpu: list[float] = []
        self.running = True

    def run(self) -> None:
        self.process.cpu_percent(None)
        while self.running:
            time.sleep(SAMPLE_S)
            try:
                cpu, rss = self.process.cpu_percent(None), self.process.memory_info().rss / 1024**2
            except psutil.NoSuchProcess:
                return
            if self.recording.is_set():
                self.cpu.append(cpu)
                self.rss.append(rss)


def has_data(png: bytes) -> bool:
    """Whether a tile shows any of the source (transparent tiles lie beyond the data)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return image is not None and image.ndim == 3 and image.shape[2] == 4 and bool(image[..., 3].max() > 0)


async def fetch_all(port: int, tiles: list[mercantile.Tile]) -> tuple[dict[mercantile.Tile, bytes], list[float], list[float]]:
    """Every tile, asked at once over CONNECTIONS connections; the tiles, each one's arrival time (s), and the arrival
    times of the tiles that show data."""
    start = time.perf_counter()
    arrivals: list[float] = []
    with_data: list[float] = []
    found: dict[mercantile.Tile, bytes] = {}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=3600)) as session:
        async def one(tile: mercantile.Tile) -> None:
            async with session.get(f"http://127.0.0.1:{port}/{tile.z}/{tile.x}/{tile.y}.png") as response:
                response.raise_for_status()
                found[tile] = await response.read()
                arrivals.append(time.perf_counter() - start)
                if has_data(found[tile]):
                    with_data.append(arrivals[-1])
        await asyncio.gather(*(one(t) for t in tiles))
    return found, sorted(arrivals), sorted(with_data)


async def latencies(port: int, tiles: list[mercantile.Tile]) -> list[float]:
    """Each tile asked alone, one after the other (s)."""
    out = []
    async with aiohttp.ClientSession() as session:
        for tile in tiles:
            start = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/{tile.z}/{tile.x}/{tile.y}.png") as response:
                await response.read()
            out.append(time.perf_counter() - start)
    return out


def view_image(tiles: dict[mercantile.Tile, bytes]) -> tuple[np.ndarray, int, int]:
    """The view's tiles side by side: (rows, cols, 4) RGBA, and the x, y of its top-left tile."""
    x0, y0 = min(t.x for t in tiles), min(t.y for t in tiles)
    cols, rows = max(t.x for t in tiles) - x0 + 1, max(t.y for t in tiles) - y0 + 1
    image = np.zeros((rows * TILE_SIZE, cols * TILE_SIZE, 4), np.uint8)
    for tile, png in tiles.items():
        rgba = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        r, c = (tile.y - y0) * TILE_SIZE, (tile.x - x0) * TILE_SIZE
        image[r:r + TILE_SIZE, c:c + TILE_SIZE] = rgba
    return image, x0, y0


def truth_view(truth: Path, zoom: int, x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """The truth warped onto the view's tiles (bilinear, as the server warps): (rows, cols, 4) with validity."""
    left, top = mercantile.xy_bounds(x0, y0, zoom).left, mercantile.xy_bounds(x0, y0, zoom).top
    pixel = 2 * np.pi * 6378137.0 / TILE_SIZE / 2**zoom
    rows, cols = shape
    with rasterio.open(truth) as ds:
        values = np.concatenate([ds.read().astype(np.float32), np.ones((1, ds.height, ds.width), np.float32)])
        out = np.zeros((4, rows, cols), np.float32)
        reproject(values, out, src_transform=ds.transform, src_crs=ds.crs, dst_crs=WEB_MERCATOR,
                  dst_transform=from_bounds(left, top - rows * pixel, left + cols * pixel, top, cols, rows),
                  resampling=Resampling.bilinear)
    out[3] *= 255
    return out.transpose(1, 2, 0)


def masked_step(image: np.ndarray, valid: np.ndarray, borders: list[int]) -> float:
    """seam_score over both axes, counting only steps between two valid pixels."""
    ratios = []
    for axis in (0, 1):
        steps = np.abs(np.diff(image.astype(np.float64), axis=axis)).mean(axis=-1)
        both = np.logical_and(np.take(valid, range(1, valid.shape[axis]), axis=axis),
                              np.take(valid, range(valid.shape[axis] - 1), axis=axis))
        index = [b - 1 for b in borders if 0 < b < image.shape[axis]]
        on = np.take(steps, index, axis=axis)[np.take(both, index, axis=axis)]
        if on.size:
            ratios.append(on.mean() / steps[both].mean())
    return float(np.mean(ratios)) if ratios else float("nan")


def block_mosaic(cache: Path, low: Path, scale: int, block: int) -> Optional[np.ndarray]:
    """The super-resolved blocks in the cache, each its own part, pasted on their grid (the truth's): (3, h, w), NaN
    where no block was made."""
    with rasterio.open(low) as ds:
        height, width, grid = ds.height * scale, ds.width * scale, ds.transform * Affine.scale(1 / scale)
    image = np.full((3, height, width), np.nan, np.float32)
    side = block * scale
    files = list(cache.glob("*/blocks/*.tif"))
    for path in files:
        row, col = (int(v) for v in path.stem.split("_"))
        with rasterio.open(path) as ds:
            data = ds.read([1, 2, 3])
            file_col, file_row = (round(v) for v in ~grid * (ds.transform.c, ds.transform.f))
        r0, c0 = row * side - file_row, col * side - file_col  # the block's own part of a run that reached back
        own = data[:, r0:r0 + side, c0:c0 + side]
        image[:, row * side:row * side + own.shape[1], col * side:col * side + own.shape[2]] = own
    return image if files else None


def block_steps(cache: Path, truth: Path, low: Path, scale: int, block: int) -> dict[str, Optional[float]]:
    """Block-border steps of the served blocks and of the truth on the same grid (rows/cols wholly covered)."""
    mosaic = block_mosaic(cache, low, scale, block)
    if mosaic is None:
        return dict.fromkeys(f"{prefix}block_{lines}_step" for prefix in ("", "truth_") for lines in ("border", "lattice"))
    covered_rows = ~np.isnan(mosaic[0]).any(axis=1)
    covered_cols = ~np.isnan(mosaic[0]).any(axis=0)
    with rasterio.open(truth) as ds:
        truth_pixels = ds.read().astype(np.float32)
    borders = list(range(block * scale, mosaic.shape[2], block * scale))
    # The other lines in the borders' phase of the latent (8 output px) and of the input pixel: a view holds a
    # border or two, so the step on them alone is mostly the luck of those lines; on the same image's other lines
    # of that lattice it tells a seam between runs from the model's own period.
    period = int(np.lcm(LATENT_FACTOR, scale))
    lattice = [b for b in range(period, mosaic.shape[2], period) if b not in borders]
    out = {}
    for prefix, image in (("", mosaic), ("truth_", truth_pixels)):
        cols = image[:, covered_rows][:, :, covered_cols] if covered_rows.any() and covered_cols.any() else image
        out[f"{prefix}block_border_step"] = round(seams(cols, borders), 4)
        out[f"{prefix}block_lattice_step"] = round(seams(cols, lattice), 4)
    return out


def drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def run(args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    truth, low = write_truth_and_low(args.scene, args.crop, args.scale, folder)
    cache = folder / "cache"
    command = [sys.executable, "-m", "infscene", "serve", str(low), "--port", "0", "--scale", str(args.scale),
               "--cache", str(cache), "--block", str(args.block), "--progress", "json"]
    if args.model:
        command += ["--model", str(args.model)]
    if args.detail is not None:
        command += ["--detail", str(args.detail)]
    if args.margin is not None:
        command += ["--margin", str(args.margin)]
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        serving = next(json.loads(line) for line in server.stdout if line.startswith('{"event": "serving"'))
        ready_s = time.perf_counter() - started
        threading.Thread(target=drain, args=(server.stdout,), daemon=True).start()  # the tiles events
        port, zoom = serving["port"], serving["max_zoom"]
        monitor = Monitor(server.pid)
        monitor.start()
        view = view_tiles(low, zoom, args.width, args.height)
        monitor.recording.set()
        tiles, arrivals, data_arrivals = asyncio.run(fetch_all(port, view))
        asyncio.run(fetch_all(port, view_tiles(low, zoom, args.width, args.height, shift_x=args.width // 2)))
        monitor.recording.clear()
        hits = asyncio.run(latencies(port, view))
        image, x0, y0 = view_image(tiles)
        reference = truth_view(truth, zoom, x0, y0, image.shape[:2])
        valid = (image[..., 3] == 255) & (reference[..., 3] >= 254.5)
        borders = list(range(TILE_SIZE, max(image.shape[:2]), TILE_SIZE))
        result = {
            "scene": str(args.scene), "crop": args.crop, "scale": args.scale, "block": args.block, "margin": args.margin, "detail": args.detail,
            "view": f"{args.width}x{args.height}", "max_zoom": zoom, "view_tiles": len(view),
            "machine_cpus": psutil.cpu_count(), "ready_s": round(ready_s, 2),
            "first_tile_s": round(arrivals[0], 3), "first_data_tile_s": round(data_arrivals[0], 3),
            "data_tiles": len(data_arrivals), "fill_view_s": round(arrivals[-1], 3),
            "cache_hit_ms": round(1000 * statistics.median(hits), 2),
            "pan_peak_rss_mb": round(max(monitor.rss, default=0.0), 1),
            "pan_cpu_percent_mean": round(statistics.mean(monitor.cpu), 1) if monitor.cpu else None,
            "pan_cpu_percent_peak": round(max(monitor.cpu), 1) if monitor.cpu else None,
            "tile_border_step": round(masked_step(image[..., :3], valid, borders), 4),
            "truth_tile_border_step": round(masked_step(reference[..., :3], valid, borders), 4),
            **block_steps(cache, truth, low, args.scale, args.block),
        }
        monitor.running = False
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", type=Path, default=SCENE, help="the truth: an RGB(+) 8-bit raster")
    p.add_argument("--crop", type=int, default=1024, help="centre crop of the scene, truth pixels a side")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--block", type=int, default=128, help="the server's --block")
    p.add_argument("--width", type=int, default=1920, help="view width in screen pixels")
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--margin", type=int, help="the server's --margin (default: the engine's)")
    p.add_argument("--model", type=Path)
    p.add_argument("--detail", type=float)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
