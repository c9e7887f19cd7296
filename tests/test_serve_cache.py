"""The live layer's disk cache (serve/cache.py) as a folder several servers share and servers die over: one bound
for the folder, partial files of killed servers counted and removed, a disk that fills up costing the cache and
never a tile.

Two DiskCaches with their own Workspaces stand for two server processes: they share nothing in memory, only the
folder (its count file and its lock), as two processes do. A killed server is a real process killed with SIGKILL.
"""
from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mercantile
import pytest
import rasterio
from rasterio.warp import transform_bounds

from infscene.plan import SROptions
from infscene.raster.workspace import Workspace
from infscene.serve.cache import LOCK_FILE, USAGE_FILE, DiskCache
from infscene.serve.source import LiveSource, Source, open_source
from infscene.serve.tiles import Tiles

from scenes import FIXTURES

NAIP = FIXTURES / "naip_nd_5m_64.tif"
KEY, OTHER_KEY = "0123456789abcdef01234567", "fedcba9876543210fedcba98"  # cache keys are hex digests
LIMIT = 10_000
ENTRY_BYTES = 1_000
FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def held(root: Path) -> int:
    """The bytes the cache holds in its folder, counted here independently: every file but its lock and count."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name not in (LOCK_FILE, USAGE_FILE))


def unexpected(line: str) -> None:
    raise AssertionError(f"the cache said: {line}")


def write_in_order(cache: DiskCache, path: Path, data: bytes, order: int) -> None:
    """Write an entry, then date it `order` seconds after a fixed past moment: entries written within one tick of
    the file system's clock would otherwise share an mtime, and their order in the cache be a tie."""
    cache.write(path, data)
    if path.exists():
        moment = (time.time_ns() // 10**9 - 10_000 + order) * 10**9
        os.utime(path, ns=(moment, moment))


KILLED_WRITER = """
import sys, time
from pathlib import Path
from infscene.raster.workspace import Workspace
from infscene.serve.cache import DiskCache

where, size, how = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
workspace = Workspace()
if how == "staging":  # a server's cache, killed once the entry is staged, before it is renamed into place
    def killed_here(*args):
        print(workspace.folder_in(where), flush=True)
        time.sleep(120)
    DiskCache._admit = killed_here
    cache = DiskCache(where, int(sys.argv[4]), workspace, print)
    cache.write(cache.tile_path("0123456789abcdef01234567", 3, 0, 0), bytes(size))
else:  # a run folder with a partial file in it, as an earlier version's block runs left inside the cache
    folder = workspace.folder_in(where)
    (folder / "partial.tif").write_bytes(bytes(size))
    print(folder, flush=True)
    time.sleep(120)
"""


def killed_writer(where: Path, size: int, how: str = "run", limit: int = LIMIT) -> Path:
    """The run folder a real process leaves in `where` when it is SIGKILLed while writing `size` bytes there."""
    where.mkdir(parents=True, exist_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(where), str(size), how, str(limit)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    folder = Path(writer.stdout.readline().strip())
    writer.kill()
    writer.wait()
    assert sum(p.stat().st_size for p in folder.iterdir()) == size
    return folder


def test_two_servers_over_one_folder_hold_its_bound_together(tmp_path: Path) -> None:
    """Forty 1 kB entries, written in turn by two caches over one 10 kB folder: after every write the folder holds
    at most the bound (it held twice the bound when each process counted its own writes), the newest entries are
    kept whoever wrote them, and the oldest are gone whoever wrote them."""
    root = tmp_path / "cache"
    with Workspace() as one, Workspace() as two:
        servers = [DiskCache(root, LIMIT, one, unexpected), DiskCache(root, LIMIT, two, unexpected)]
        written = []
        for n in range(40):
            server = servers[n % 2]
            path = server.tile_path((KEY, OTHER_KEY)[n % 2], 12, n, 7)
            write_in_order(server, path, bytes(ENTRY_BYTES), n)
            written.append(path)
            assert held(root) <= LIMIT
        assert held(root) > LIMIT // 2, "the bound is used, not emptied"
        assert all(path.is_file() for path in written[-8:])
        assert not any(path.is_file() for path in written[:30])
        assert servers[0].read(written[-1]) == bytes(ENTRY_BYTES), "each reads what the other wrote"


def test_a_start_counts_what_is_there_and_mends_a_wrong_count(tmp_path: Path) -> None:
    """Entries a server renamed into place and was killed before it counted them (and a garbled count file): the
    next start counts the folder itself and brings it within the bound, oldest out first."""
    root = tmp_path / "cache"
    with Workspace() as first:
        cache = DiskCache(root, 100 * LIMIT, first, unexpected)
        written = []
        for n in range(20):
            path = cache.tile_path(KEY, 12, n, 7)
            write_in_order(cache, path, bytes(ENTRY_BYTES), n)
            written.append(path)
    (root / USAGE_FILE).write_text("12\x00garbage")
    with Workspace() as second:
        DiskCache(root, LIMIT, second, unexpected)
    assert held(root) <= LIMIT
    assert all(path.is_file() for path in written[-8:]) and not any(path.is_file() for path in written[:10])
    assert int((root / USAGE_FILE).read_text()) == held(root)


def test_partial_files_of_killed_servers_are_removed_at_start_and_at_eviction(tmp_path: Path) -> None:
    """Partial files of killed servers: run folders as earlier versions left them (a block run's, inside the key's
    blocks; a staged tile's) are removed by the next start; an entry staged by a server killed before it renamed
    it into place counts against the bound at once (it was counted before it was written), and the next eviction
    removes it."""
    root = tmp_path / "cache"
    at_start = [killed_writer(root, 3 * ENTRY_BYTES), killed_writer(root / KEY / "blocks", 3 * ENTRY_BYTES)]
    with Workspace() as workspace:
        cache = DiskCache(root, LIMIT, workspace, unexpected)
        assert not any(folder.exists() for folder in at_start)
        assert held(root) == 0
        meanwhile = killed_writer(root, 4 * ENTRY_BYTES, "staging")
        for n in range(8):
            write_in_order(cache, cache.tile_path(KEY, 12, n, 7), bytes(ENTRY_BYTES), n)
            assert held(root) <= LIMIT
        assert not meanwhile.exists()
        assert held(root) == 8 * ENTRY_BYTES, "the partial file went, not the entries"


def test_a_live_servers_partial_files_count_and_stay(tmp_path: Path) -> None:
    """Another server's run folder, its owner alive: its bytes count against the bound and are never removed."""
    root = tmp_path / "cache"
    root.mkdir()
    with Workspace() as other, Workspace() as workspace:
        partial = other.folder_in(root) / "partial.tif"
        partial.write_bytes(bytes(6 * ENTRY_BYTES))
        cache = DiskCache(root, LIMIT, workspace, unexpected)
        for n in range(10):
            write_in_order(cache, cache.tile_path(KEY, 12, n, 7), bytes(ENTRY_BYTES), n)
            assert held(root) <= LIMIT
        assert partial.stat().st_size == 6 * ENTRY_BYTES
        assert held(root) - partial.stat().st_size <= LIMIT - 6 * ENTRY_BYTES


def test_a_cache_whose_disk_fills_up_is_left_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    root = tmp_path / "cache"
    with Workspace() as workspace:
        cache = DiskCache(root, 1024**2, workspace, lines.append)
        first = cache.tile_path(KEY, 1, 0, 0)
        cache.write(first, b"tile")
        assert cache.read(first) == b"tile"

        def full(*args: object) -> None:
            raise FULL_DISK

        monkeypatch.setattr(DiskCache, "_admit", full)  # where every entry enters the folder
        for y in range(3):
            cache.write(cache.tile_path(KEY, 2, 0, y), b"tile")
        assert not cache.enabled and cache.read(first) is None
        assert sorted(p.name for p in root.rglob("*") if p.is_file() and p.stat().st_size) == [USAGE_FILE, "0.png"], \
            "no partial entry"
    assert lines == [f"cache folder {root} cannot be written (No space left on device): serving without a disk cache"]


def serve_in_process(source: Source, cache_root: Path, scratch: Path, tiles: list[mercantile.Tile]) -> tuple[list[bytes], list[str]]:
    """The tiles as the server's Tiles makes them (the model runs), and its log lines; raises what a tile raises
    (the server would answer it 500)."""
    lines: list[str] = []

    async def scenario() -> list[bytes]:
        with Workspace() as workspace:
            cache = DiskCache(cache_root, 1024**3, workspace, lines.append)
            maker = Tiles(LiveSource(source, lines.append), cache, workspace.folder_in(scratch), threading.Event(),
                          lines.append)
            worker = asyncio.create_task(maker.scheduler.run())
            try:
                return [await maker.tile(t.z, t.x, t.y) for t in tiles]
            finally:
                worker.cancel()
                maker.close()

    return asyncio.run(scenario()), lines


def test_a_full_cache_disk_fails_no_tile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tile of the fixture at the source's zoom and the super-resolved ones, with the cache's disk full from
    the first entry on: each is served, the same PNG as with a working cache, and the log says it in one line
    (before: the tiles that needed a block run failed, HTTP 500)."""
    source = open_source(NAIP, SROptions(scale=2.0), 64)
    with rasterio.open(NAIP) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    zooms = [source.zooms.native_zoom, source.zooms.max_zoom]
    wanted = list(mercantile.tiles(west, south, east, north, zooms))
    expected, lines = serve_in_process(source, tmp_path / "working", tmp_path, wanted)
    assert lines == []

    def full(*args: object) -> None:
        raise FULL_DISK

    monkeypatch.setattr(DiskCache, "_admit", full)
    served, lines = serve_in_process(source, tmp_path / "full", tmp_path, wanted)
    assert served == expected
    assert lines == [f"cache folder {tmp_path / 'full'} cannot be written (No space left on device): "
                     "serving without a disk cache"]
    assert held(tmp_path / "full") == 0, "no entry, no partial file"
