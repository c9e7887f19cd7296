"""`infscene serve`: real servers (subprocesses on port 0) over a real NAIP crop, fetched over HTTP.

The model is the bundled e2diffsr at 2x: the tiny test SR3 would run its 50 default steps per block (serve
has no --steps), about ten times longer on a CPU. The whole 64 px fixture is one block (--block 64), so
a tile of the layer can be checked against `infscene sr` over the same extent, warped the same way.
"""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import cv2
import mercantile
import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from infscene.plan import SROptions
from infscene.serve.scheduler import Scheduler
from infscene.serve.source import open_source
from infscene.serve.tiles import BlockMemory, patch_bytes
from infscene.serve.zooms import WEB_MERCATOR, parse_tile, zoom_levels

from scenes import FIXTURES, shared_scene

NAIP = FIXTURES / "naip_nd_5m_64.tif"
SCALE = "2"
START_TIMEOUT_S = 90
TILE_TIMEOUT_S = 120


class Server:
    """An `infscene serve` subprocess with --progress json: its events, its stderr, HTTP requests to it."""

    def __init__(self, source: Path, cache: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "infscene", "serve", str(source), "--port", "0", "--cache", str(cache),
                   "--scale", SCALE, "--block", "64", "--progress", "json", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "serving":
                self._ready.set()
        self._ready.set()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_ready(self) -> dict:
        assert self._ready.wait(START_TIMEOUT_S), "the server did not start"
        serving = [e for e in self.events if e["event"] == "serving"]
        assert serving, f"the server exited: {self.stderr}"
        return serving[0]

    def get(self, path: str) -> tuple[int, bytes]:
        """GET `path` exactly as written (no client-side normalisation of '..' or escapes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.wait_ready()["port"], timeout=TILE_TIMEOUT_S)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def tile(self, tile: mercantile.Tile) -> bytes:
        status, body = self.get(f"/{tile.z}/{tile.x}/{tile.y}.png")
        assert status == 200, body
        return body

    def last_activity(self) -> dict:
        time.sleep(0.6)  # the activity events come at most every 0.25 s
        return [e for e in self.events if e["event"] == "tiles"][-1]

    def activity_where(self, holds: Callable[[dict], bool]) -> dict:
        """The first activity event for which `holds` is true, waited for (a loaded machine may delay the events)."""
        deadline = time.monotonic() + TILE_TIMEOUT_S
        while True:
            found = [e for e in list(self.events) if e["event"] == "tiles" and holds(e)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no such activity event: {self.events[-3:]}"
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=60)


@contextmanager
def serving(source: Path, cache: Path, *extra: str) -> Iterator[Server]:
    server = Server(source, cache, *extra)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def decode(png: bytes) -> np.ndarray:
    """RGBA (h, w, 4) uint8 of a PNG."""
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)


def tiles_over(source: Path, zoom: int) -> list[mercantile.Tile]:
    with rasterio.open(source) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return list(mercantile.tiles(west, south, east, north, [zoom]))


def fetch_ignoring_errors(server: Server, tile: mercantile.Tile) -> None:
    """A request whose answer nobody waits for (its server is about to be killed)."""
    try:
        server.get(f"/{tile.z}/{tile.x}/{tile.y}.png")
    except OSError:
        pass


def files_under(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "cache"


@pytest.fixture(scope="module")
def server(cache_dir: Path) -> Iterator[Server]:
    with serving(NAIP, cache_dir) as s:
        s.wait_ready()
        yield s


@pytest.fixture(scope="module")
def max_zoom_tile(server: Server) -> tuple[mercantile.Tile, bytes]:
    """The max_zoom tile with the most source under it, fetched once (the model runs here)."""
    zoom = server.wait_ready()["max_zoom"]
    fetched = [(tile, server.tile(tile)) for tile in tiles_over(NAIP, zoom)]
    return max(fetched, key=lambda pair: int((decode(pair[1])[..., 3] == 255).sum()))


def test_ready_event_names_the_layer(server: Server) -> None:
    event = server.wait_ready()
    assert event["url"] == f"http://127.0.0.1:{event['port']}/{{z}}/{{x}}/{{y}}.png"
    # 5 m at 47 N is 7.3 EPSG:3857 units: zoom 14 (9.6) is the finest at least that coarse, zoom 16 (2.4) the first
    # at 2x (3.7 units or finer); the 64 px fixture spans 16 pixels of a tile from zoom 13 on
    assert (event["min_zoom"], event["native_zoom"], event["max_zoom"]) == (13, 14, 16)


def test_tile_at_max_zoom_matches_infscene_sr(server: Server, max_zoom_tile: tuple[mercantile.Tile, bytes],
                                              tmp_path: Path) -> None:
    """The layer's pixels are `infscene sr`'s over the same extent, warped bilinearly onto the tile.

    The block is the whole fixture, so the run is the CLI's run (same seed, bounds, model, precision) and the
    super-resolved pixels are equal; both sides then warp with GDAL's bilinear. Where the reference is
    wholly inside the data the only difference left is each side's rounding to 8 bits: at most 1.
    """
    tile, png = max_zoom_tile
    reference = tmp_path / "sr.tif"
    done = subprocess.run([sys.executable, "-m", "infscene", "sr", str(NAIP), str(reference), "--scale", SCALE,
                           "--no-checkpoint", "--progress", "none"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with rasterio.open(reference) as ds:
        values = np.concatenate([ds.read([1, 2, 3]).astype(np.float32), (ds.dataset_mask() > 0)[None].astype(np.float32)])
        warped = np.zeros((4, 256, 256), np.float32)
        b = mercantile.xy_bounds(tile)
        reproject(values, warped, src_transform=ds.transform, src_crs=ds.crs, dst_crs=WEB_MERCATOR,
                  dst_transform=from_bounds(b.left, b.bottom, b.right, b.top, 256, 256), resampling=Resampling.bilinear)
    rgba = decode(png)
    inside = warped[3] >= 1.0 - 1e-6
    assert inside.sum() > 10_000, "the tile should be mostly over the source"
    assert (rgba[..., 3][inside] == 255).all()
    difference = np.abs(rgba[..., :3].astype(np.float32) - np.rint(warped[:3].transpose(1, 2, 0)))[inside]
    assert difference.max() <= 1.0
    assert rgba[..., :3][inside].std() > 5, "a real image, not a flat colour"


def test_tiles_outside_the_source_or_too_coarse_are_transparent(server: Server) -> None:
    event = server.wait_ready()
    for tile in (mercantile.Tile(0, 0, event["max_zoom"]), tiles_over(NAIP, event["min_zoom"] - 1)[0]):
        rgba = decode(server.tile(tile))
        assert rgba.shape == (256, 256, 4) and (rgba[..., 3] == 0).all()
    native = decode(server.tile(tiles_over(NAIP, event["native_zoom"])[0]))
    assert (native[..., 3] == 255).any() and (native[..., 3] == 0).any(), "the source, no model, with its edge"


def test_a_second_view_comes_from_the_cache(server: Server, max_zoom_tile: tuple[mercantile.Tile, bytes],
                                            cache_dir: Path) -> None:
    tile, first = max_zoom_tile
    before = server.last_activity()
    assert server.tile(tile) == first
    after = server.activity_where(lambda e: e["done"] > before["done"])
    assert after["cached"] == before["cached"] + 1 and after["done"] == before["done"] + 1
    blocks = {p: p.stat().st_mtime_ns for p in cache_dir.rglob("blocks/*.tif")}
    assert blocks
    # a new server over the same cache: the tile is read back, the model never runs
    with serving(NAIP, cache_dir) as again:
        assert again.tile(tile) == first
        activity = again.activity_where(lambda e: e["done"] > 0)
        assert activity["done"] == activity["cached"] == 1
        assert again.stop() == 0
    assert {p: p.stat().st_mtime_ns for p in cache_dir.rglob("blocks/*.tif")} == blocks


def test_hostile_paths_are_refused_and_nothing_is_written_outside_the_cache(server: Server, cache_dir: Path) -> None:
    outside = cache_dir.parent
    before = {p: m for p, m in files_under(outside).items() if cache_dir not in p.parents}
    zoom = server.wait_ready()["max_zoom"]
    refused = {
        "/../x": 404, "/../../etc/passwd": 404, "/a/b/c.png": 400, "/1/-1/0.png": 400, "/1/0/-1.png": 400,
        "/99999999999999999999/0/0.png": 400, "/3/99999999999999999999/0.png": 400, "/1/0.5/0.png": 400,
        "/1/2/0.png": 400, "/1/0/2.png": 400, "/%2e%2e/%2e%2e/x.png": 400, "/1/0/0.jpg": 404, "/1/0/0/0.png": 404,
        "/25/0/0.png": 400, f"/{zoom + 1}/0/0.png": 404, "/1/%EF%BC%91/0.png": 400,
    }
    for path, status in refused.items():
        got, _ = server.get(path)
        assert got == status, path
    after = {p: m for p, m in files_under(outside).items() if cache_dir not in p.parents}
    assert after == before
    assert server.process.poll() is None, "still serving"


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "infscene", "serve", str(NAIP), "--port", str(port), "--scale",
                               SCALE, "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"infscene: cannot listen on 127.0.0.1:{port}"), done.stderr


@pytest.mark.parametrize("name", ["missing.tif", "rotated.tif"])
def test_a_source_the_engine_refuses_is_refused_at_start(name: str, tmp_path: Path) -> None:
    source = FIXTURES / name
    done = subprocess.run([sys.executable, "-m", "infscene", "serve", str(source), "--port", "0", "--cache",
                           str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and ("not found" in lines[0] or "rotated" in lines[0]), done.stderr
    assert not (tmp_path / "cache").exists()


def test_a_cache_that_cannot_be_written_still_serves(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    with serving(NAIP, in_the_way / "cache") as s:
        zoom = s.wait_ready()["native_zoom"]
        assert (decode(s.tile(tiles_over(NAIP, zoom)[0]))[..., 3] == 255).any()
        assert s.stop() == 0
    notes = [line for line in s.stderr if "serving without a disk cache" in line]
    assert len(notes) == 1, s.stderr
    assert in_the_way.read_text() == "not a folder"


def write_crop(out: Path, col_off: int) -> Path:
    """A 512 px crop of a real NAIP scene, `col_off` pixels from its left."""
    with rasterio.open(shared_scene("naip_ND_5m/m_4709963_se_14_1_20100629.tif")) as ds:
        window = Window(col_off, 0, 512, 512)
        profile = {**ds.profile, "width": 512, "height": 512, "transform": ds.window_transform(window)}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(ds.read(window=window))
    return out


def cache_bytes(cache: Path) -> int:
    return sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())


def test_the_cache_stays_within_its_size(tmp_path: Path) -> None:
    """Source tiles of a real scene (no model): more than the bound in all, the oldest evicted, the newest kept."""
    source = write_crop(tmp_path / "crop.tif", 0)
    cache, limit_mb = tmp_path / "cache", 0.1
    with serving(source, cache, "--cache-size", str(limit_mb)) as s:
        zoom = s.wait_ready()["native_zoom"]
        tiles = tiles_over(source, zoom) + tiles_over(source, zoom - 1)
        sizes = [len(s.tile(tile)) for tile in tiles]
        assert s.stop() == 0
    assert sum(sizes) > limit_mb * 1024**2, "the test must overflow the bound"
    stored = {p.relative_to(cache).parts[-3:]: p.stat().st_size for p in cache.rglob("*.png")}
    assert 0 < sum(stored.values()) <= cache_bytes(cache) <= limit_mb * 1024**2
    newest, oldest = tiles[-1], tiles[0]
    assert (str(newest.z), str(newest.x), f"{newest.y}.png") in stored
    assert (str(oldest.z), str(oldest.x), f"{oldest.y}.png") not in stored


def test_two_servers_sharing_a_cache_folder_hold_its_bound_together(tmp_path: Path) -> None:
    """Two servers over two crops, one cache folder, tiles asked of each in turn: after every tile the folder holds
    at most its bound (before: each server counted its own tiles, and the folder held up to twice the bound)."""
    sources = [write_crop(tmp_path / "west.tif", 0), write_crop(tmp_path / "east.tif", 512)]
    cache, limit_mb = tmp_path / "cache", 0.1
    with serving(sources[0], cache, "--cache-size", str(limit_mb)) as west, \
            serving(sources[1], cache, "--cache-size", str(limit_mb)) as east:
        zoom = west.wait_ready()["native_zoom"]
        asked = 0
        for pair in zip(*(tiles_over(source, zoom) + tiles_over(source, zoom - 1) for source in sources)):
            for server, tile in zip((west, east), pair):
                asked += len(server.tile(tile))
                assert cache_bytes(cache) <= limit_mb * 1024**2
        assert west.stop() == 0 and east.stop() == 0
    assert asked > 1.5 * limit_mb * 1024**2, "the test must overflow the bound"
    assert list(cache.glob(f"*/tiles/{tile.z}/{tile.x}/{tile.y}.png")), "the newest tile is kept"


def test_killed_mid_block_leaves_no_broken_entry_and_sigterm_stops_cleanly(
        tmp_path: Path, max_zoom_tile: tuple[mercantile.Tile, bytes]) -> None:
    """Killed between blocks of one tile: small blocks (16 input px) make the tile 16 block runs long, so the
    kill lands after the first block is stored and before the last, whatever the machine's speed."""
    tile, _ = max_zoom_tile
    small_blocks = ("--block", "16")
    with serving(NAIP, tmp_path / "fresh", *small_blocks) as fresh:
        expected = fresh.tile(tile)
    cache = tmp_path / "cache"
    with serving(NAIP, cache, *small_blocks) as killed:
        killed.wait_ready()
        threading.Thread(target=fetch_ignoring_errors, args=(killed, tile), daemon=True).start()
        deadline = time.monotonic() + TILE_TIMEOUT_S
        while not list(cache.rglob("blocks/*.tif")):
            assert time.monotonic() < deadline, "no block was stored"
            time.sleep(0.01)
        assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
    stored = list(cache.rglob("blocks/*.tif"))
    assert 0 < len(stored) < 16, "killed mid-tile"
    for block in stored:  # only complete blocks may be there
        with rasterio.open(block) as ds:
            ds.read()
    with serving(NAIP, cache, *small_blocks) as s:
        assert s.tile(tile) == expected, "made again, the same pixels"
        pid = s.process.pid
        assert s.stop(signal.SIGTERM) == 0
    assert s.stderr[-1] == "infscene serve: stopped"
    assert not list(cache.rglob(".infscene-run-*")), "the killed server's and this one's run folders are gone"
    assert not list(Path(tempfile.gettempdir()).glob(f".infscene-run-{pid}-*"))


def digests(pngs: list[bytes]) -> list[str]:
    """Short digests of tiles, so that a failed comparison prints twelve characters a tile, not the PNGs."""
    return [hashlib.sha256(png).hexdigest()[:12] for png in pngs]


def write_colours_swapped(source: Path, out: Path) -> None:
    """`source` with its red and blue bands swapped: the same layout, size and validity, other pixels."""
    with rasterio.open(source) as ds:
        bands, profile, colours = ds.read(), ds.profile, ds.colorinterp
    bands[[0, 2]] = bands[[2, 0]]
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(bands)
        dst.colorinterp = colours


@pytest.mark.parametrize("how", ["renamed over it", "overwritten in place"])
def test_a_source_replaced_while_served_is_served_as_the_new_file(how: str, tmp_path: Path) -> None:
    """Every tile asked after the source was replaced (the source's zoom and the super-resolved ones) is the new
    file's own, as a fresh server over it makes them; before, tiles of both files were in one layer, kept under
    the old file's cache key."""
    source, new = tmp_path / "scene.tif", tmp_path / "new.tif"
    shutil.copyfile(NAIP, source)
    write_colours_swapped(NAIP, new)
    with serving(source, tmp_path / "cache") as s:
        event = s.wait_ready()
        wanted = tiles_over(source, event["native_zoom"]) + tiles_over(source, event["max_zoom"])
        before = [s.tile(tile) for tile in wanted]
        if how == "renamed over it":
            os.replace(new, source)
        else:
            shutil.copyfile(new, source)
        after = [s.tile(tile) for tile in wanted]
        assert s.stop() == 0
    with serving(source, tmp_path / "fresh") as fresh:
        own = [fresh.tile(tile) for tile in wanted]
        assert fresh.stop() == 0
    assert all(a != b for a, b in zip(own, before) if (decode(a)[..., 3] > 0).any()), "the two files' tiles differ"
    assert digests(after) == digests(own)
    assert len([line for line in s.stderr if "changed: serving it as it is now" in line]) == 1, s.stderr


def test_a_source_replaced_while_its_tile_is_made_is_never_mixed(tmp_path: Path,
                                                                 max_zoom_tile: tuple[mercantile.Tile, bytes]) -> None:
    """The source renamed over while a tile is being made from 16 block runs (16 px blocks), after the first block
    is stored: the tile served is the new file's own, and every block kept under the old file's key is the old
    file's own (the block being made when the file changed, maybe read from both, is dropped)."""
    tile, _ = max_zoom_tile
    small_blocks = ("--block", "16")
    source, new = tmp_path / "scene.tif", tmp_path / "new.tif"
    shutil.copyfile(NAIP, source)
    write_colours_swapped(NAIP, new)
    with serving(source, tmp_path / "old-own", *small_blocks) as old_own:
        old_own.tile(tile)
    cache = tmp_path / "cache"
    with serving(source, cache, *small_blocks) as s:
        s.wait_ready()
        answer: list[bytes] = []
        fetching = threading.Thread(target=lambda: answer.append(s.tile(tile)))
        fetching.start()
        deadline = time.monotonic() + TILE_TIMEOUT_S
        while not list(cache.rglob("blocks/*.tif")):
            assert time.monotonic() < deadline, "no block was stored"
            time.sleep(0.01)
        os.replace(new, source)
        fetching.join(TILE_TIMEOUT_S)
        assert s.stop() == 0
    with serving(source, tmp_path / "new-own", *small_blocks) as new_own:
        assert digests(answer) == digests([new_own.tile(tile)])
    [old_key] = [p.name for p in (tmp_path / "old-own").iterdir() if p.is_dir() and not p.name.startswith(".")]
    kept = sorted((cache / old_key / "blocks").glob("*.tif"))
    assert 0 < len(kept) < 16, "the change came mid-tile"
    for block in kept:
        with rasterio.open(block) as made, rasterio.open(tmp_path / "old-own" / old_key / "blocks" / block.name) as own:
            assert (made.read() == own.read()).all(), block.name


def test_many_askers_make_a_block_once_and_a_block_nobody_wants_is_dropped() -> None:
    made: list[str] = []
    release = threading.Event()

    def make(key: str) -> str:
        if key == "first":
            release.wait(10)
        made.append(key)
        return key.upper()

    async def scenario() -> None:
        scheduler: Scheduler[str, str] = Scheduler(make)
        worker = asyncio.create_task(scheduler.run())
        first = [asyncio.create_task(scheduler.get("first")) for _ in range(5)]
        await asyncio.sleep(0.05)  # "first" is being made; "unwanted" waits behind it
        unwanted = [asyncio.create_task(scheduler.get("unwanted")) for _ in range(3)]
        await asyncio.sleep(0.05)
        for task in unwanted:
            task.cancel()  # as aiohttp does when the clients disconnect
        release.set()
        assert await asyncio.gather(*first) == ["FIRST"] * 5
        assert await scheduler.get("later") == "LATER"
        worker.cancel()
        scheduler.close()
        assert (scheduler.counts.made, scheduler.counts.dropped) == (2, 1)

    asyncio.run(scenario())
    assert made == ["first", "later"]


def test_blocks_in_memory_stay_within_their_budget_and_the_newest_is_kept() -> None:
    """Real patches (the fixture's 16 px blocks read as a tile reads the source: float32 colour and validity) put in
    a memory of 3.5 blocks: after every put the arrays held are within the budget, and what is held is the newest
    blocks, a block just used counting as new; a block larger than the whole budget is still kept, alone."""
    source = open_source(NAIP, SROptions(scale=float(SCALE)), 16)
    blocks = [(row, col) for row in range(4) for col in range(4)]
    patches = {block: source.read(source.grid.window(block), 1) for block in blocks}
    size = patch_bytes(patches[blocks[0]])
    assert size == 16 * 16 * 16, "three float32 colour planes and a float32 validity plane"
    memory = BlockMemory(3 * size + size // 2)

    def held() -> list[tuple[int, int]]:
        return [block for block in [*blocks, (9, 9)] if block in memory]

    for n, block in enumerate(blocks):
        memory.put(block, patches[block])
        assert memory.nbytes == sum(patch_bytes(patches[b]) for b in held()) <= memory.budget
        assert held() == blocks[max(0, n - 2):n + 1]
    assert memory.get(blocks[-3]) is patches[blocks[-3]]
    memory.put(blocks[0], patches[blocks[0]])
    assert held() == [blocks[0], blocks[-3], blocks[-1]], "the block used stays, the one unused since goes"
    memory.put(blocks[0], patches[blocks[0]])
    assert memory.nbytes == 3 * size, "put again, counted once"
    whole = source.read(Window(0, 0, 64, 64), 1)  # the whole fixture: 16 blocks' worth
    memory.put((9, 9), whole)
    assert held() == [(9, 9)] and memory.nbytes == patch_bytes(whole) > memory.budget


def test_zoom_levels_and_tile_parsing() -> None:
    # a 0.6 m pixel at the equator (0.6 EPSG:3857 units), 4x: native 17 (1.19), max 20 (0.149 <= 0.15)
    levels = zoom_levels(0.6, 4.0, 0.6 * 10_000)
    assert (levels.native_zoom, levels.max_zoom) == (17, 20)
    assert levels.uses_model(18) and not levels.uses_model(17) and not levels.uses_model(21)
    assert parse_tile("3", "7", "0") == (3, 7, 0)
    for bad in (("3", "8", "0"), ("-1", "0", "0"), ("1", "0x1", "0"), ("1", "", "0"), ("1" * 12, "0", "0")):
        assert parse_tile(*bad) is None
