"""One tile, from wherever it can come cheapest: the disk cache, the source itself, or super-resolved blocks.

Zooms at native resolution and coarser show the source resampled (the model adds nothing there); finer
zooms up to max_zoom are warped from a mosaic of the super-resolved blocks under the tile (plus a margin for
the resampling kernel). Blocks come from memory (those last used, within a budget in bytes), the disk cache,
or the scheduler; tiles and blocks go to the cache as they are made. Warping and PNG encoding run in a small
thread pool, beside the model's thread, so cached tiles keep flowing while a block is being made.

Every tile is of one version of the source's file (source.py, LiveSource): the file is looked at before a tile
and after it, and before and after each block run; a tile or block made while the file changed is dropped, never
cached nor served, and the tile is made again from the file as it is now.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional, TypeVar

from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..errors import Cancelled, InfSceneError
from ..protocol import TileActivity
from .block_runs import make_block, read_block
from .blocks import BlockId
from .cache import DiskCache
from .render import Patch, encode_png, mosaic, transparent_tile, warp_to_tile
from .scheduler import Scheduler
from .source import LiveSource, Source
from .zooms import WEB_MERCATOR, pixel_size, tile_bounds

T = TypeVar("T")
# Decoded blocks kept in memory, in bytes of their arrays. A block is 16 bytes an output pixel (float32 RGB and
# validity): 4 MiB at 128 px and 4x, 16 MiB at 8x. The tiles of a 1920x1080 view at max_zoom span at most 2304 x 1536
# output pixels (whole tiles; a tile pixel is at most an output pixel): 24 blocks at 4x (96 MiB), 12 at 8x (192 MiB),
# so 256 MiB holds a whole view at the model's scales and filling it never re-reads a block. Measured at 8x on the
# CPU (bench/serve_memory.py): the server settles at 1173 MiB with the budget full, 1005 MiB with none (serve.md).
MEMORY_BUDGET_BYTES = 256 * 1024**2
RENDER_THREADS = 2  # warping and encoding beside the model's thread
MARGIN = 2  # tile pixels read around a tile: the bilinear kernel's reach (GDAL widens it when it reduces)
ATTEMPTS = 3  # a tile is made again after its source changed under it, up to this many times in all


class SourceChanged(InfSceneError):
    """The source's file changed while something was made from it: that thing may mix both files and is dropped."""

    def __init__(self, source: Source) -> None:
        super().__init__(f"{source.path} changed while a tile of it was made")


def changed_under(source: Source, failure: InfSceneError) -> bool:
    """Whether a failure came with the source's file changing (a read of a file being replaced fails as well as
    mixes): the work is then made again from the file as it is now, not reported."""
    return not isinstance(failure, Cancelled) and not source.is_current()


@dataclass(frozen=True)
class BlockJob:
    """A block of one version of the source: blocks of the file before and after a change are different jobs."""

    source: Source = field(compare=False)
    block: BlockId
    key: str  # the source's cache key

    @classmethod
    def of(cls, source: Source, block: BlockId) -> BlockJob:
        return cls(source, block, source.cache_key)


class Tiles:
    """Makes tiles of one source; `scheduler.run()` must be running as a task of the same event loop."""

    def __init__(self, live: LiveSource, cache: DiskCache, scratch: Path, stopping: threading.Event,
                 log: Callable[[str], None]) -> None:
        self.live, self.cache, self._scratch, self._stopping, self._log = live, cache, scratch, stopping, log
        self.scheduler: Scheduler[BlockJob, Patch] = Scheduler(self._make_block)
        self._memory = BlockMemory(MEMORY_BUDGET_BYTES)
        self._pool = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="infscene-tile")
        self._waiting: dict[int, list[BlockJob]] = {}  # tile requests in flight -> the blocks they need
        self._ids = itertools.count()
        self.done = 0
        self.cached = 0

    @property
    def source(self) -> Source:
        """The source as last seen (each tile looks again first)."""
        return self.live.source

    async def tile(self, zoom: int, x: int, y: int) -> bytes:
        """The PNG of tile z/x/y (zoom at most max_zoom) of the source as it is now: transparent where there is none.

        Made again from the file as it is when the file changed meanwhile (what was made may mix both files)."""
        for _ in range(ATTEMPTS):
            source = await self._in_pool(self.live.current)
            try:
                data = await self._tile_of(source, zoom, x, y)
            except InfSceneError as exc:
                if isinstance(exc, SourceChanged) or await self._in_pool(changed_under, source, exc):
                    continue
                raise
            self.done += 1
            return data
        raise InfSceneError(f"{self.source.path} kept changing while tile {zoom}/{x}/{y} was made: "
                            "ask again once it is written")

    async def _tile_of(self, source: Source, zoom: int, x: int, y: int) -> bytes:
        """The tile of this version of the source: from the cache, or made and cached if the file held still."""
        window = self._window_under(source, zoom, x, y)
        if zoom < source.zooms.min_zoom or window is None:
            return transparent_tile()
        path = self.cache.tile_path(source.cache_key, zoom, x, y)
        data = await self._in_pool(self.cache.read, path)
        if data is not None:
            self.cached += 1
            return data
        bounds = tile_bounds(zoom, x, y)
        request = next(self._ids)
        if source.zooms.uses_model(zoom):
            jobs = [BlockJob.of(source, block) for block in source.grid.blocks_under(window)]
            self._waiting[request] = jobs
            try:
                patches = await asyncio.gather(*(self._block(job) for job in jobs))
                data = await self._in_pool(self._from_blocks, source, patches, bounds)
            finally:
                del self._waiting[request]
        else:
            self._waiting[request] = []
            try:
                step = max(1, math.floor(pixel_size(zoom) / source.pixel_3857))
                data = await self._in_pool(self._from_source, source, window, step, bounds)
            finally:
                del self._waiting[request]
        if not await self._in_pool(source.is_current):
            raise SourceChanged(source)
        await self._in_pool(self.cache.write, path, data)
        return data

    def activity(self) -> TileActivity:
        """Tiles waiting for a block nobody has started, tiles being made otherwise, and tiles finished."""
        queued = sum(1 for jobs in self._waiting.values()
                     if jobs and not any(self.scheduler.started(j) or j in self._memory for j in jobs))
        return TileActivity(queued=queued, rendering=len(self._waiting) - queued, done=self.done, cached=self.cached)

    def close(self) -> None:
        self.scheduler.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _window_under(source: Source, zoom: int, x: int, y: int) -> Optional[Window]:
        """The source pixels under tile z/x/y and the kernel's margin around it; None when the tile misses the source."""
        grid = source.grid
        left, bottom, right, top = transform_bounds(WEB_MERCATOR, source.crs, *tile_bounds(zoom, x, y),
                                                    densify_pts=21)
        inverse = ~grid.transform
        cols, rows = zip(*(inverse * corner for corner in ((left, bottom), (left, top), (right, bottom), (right, top))))
        if not all(math.isfinite(v) for v in (*cols, *rows)):
            return None
        margin = MARGIN * pixel_size(zoom) / source.pixel_3857  # in source pixels
        col0, row0 = max(math.floor(min(cols) - margin), 0), max(math.floor(min(rows) - margin), 0)
        col1 = min(math.ceil(max(cols) + margin), grid.width)
        row1 = min(math.ceil(max(rows) + margin), grid.height)
        if col0 >= col1 or row0 >= row1:
            return None
        return Window(col0, row0, col1 - col0, row1 - row0)

    async def _block(self, job: BlockJob) -> Patch:
        patch = self._memory.get(job)
        if patch is None:
            patch = await self._in_pool(self._cached_block, job) or await self.scheduler.get(job)
            self._memory.put(job, patch)
        return patch

    def _cached_block(self, job: BlockJob) -> Optional[Patch]:
        path = self.cache.block_path(job.key, job.block)
        if not self.cache.has(path):
            return None
        try:
            return read_block(job.source, job.block, path)
        except InfSceneError as exc:
            if path.exists():  # damaged by hand (an entry evicted meanwhile is simply made again)
                self._log(f"cached block {path.name} is unreadable ({exc}): making it again")
            return None

    def _make_block(self, job: BlockJob) -> Patch:
        """In the model's thread: super-resolve the block in the scratch folder and read it back, then move it into
        the cache; only when the source's file held still from before the run to after it (else SourceChanged).

        The block is made outside the cache so that a cache that fails (a full disk) fails no tile."""
        if self._stopping.is_set():
            raise Cancelled("the server is stopping")
        source, (row, col) = job.source, job.block
        made = self._scratch / f"{job.key}_{row}_{col}.tif"
        try:
            if not source.is_current():
                raise SourceChanged(source)
            try:
                make_block(source, job.block, made, self._stopping.is_set)
            except InfSceneError as exc:
                if changed_under(source, exc):
                    raise SourceChanged(source) from exc
                raise
            if not source.is_current():
                raise SourceChanged(source)
            patch = read_block(source, job.block, made)
            self.cache.store(self.cache.block_path(job.key, job.block), made)
        finally:
            made.unlink(missing_ok=True)
        return patch

    @staticmethod
    def _from_blocks(source: Source, patches: list[Patch], bounds: tuple[float, float, float, float]) -> bytes:
        return encode_png(warp_to_tile(mosaic(patches, source.crs), source.crs, bounds))

    @staticmethod
    def _from_source(source: Source, window: Window, step: int, bounds: tuple[float, float, float, float]) -> bytes:
        return encode_png(warp_to_tile(source.read(window, step), source.crs, bounds))

    async def _in_pool(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)


class BlockMemory:
    """Decoded blocks by job (block and source version), least recently used out first once their arrays hold more than `budget` bytes.

    Counted in bytes, not blocks: a block's size grows with the square of the scale and of --block, so a count
    bounds nothing. The block put last is always kept, even alone over the budget: the tile asking for it needs it.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.nbytes = 0  # of every array held
        self._patches: OrderedDict[Hashable, Patch] = OrderedDict()

    def __contains__(self, block: object) -> bool:
        return block in self._patches

    def get(self, block: Hashable) -> Optional[Patch]:
        """The block if it is held (now the most recently used), else None."""
        patch = self._patches.get(block)
        if patch is not None:
            self._patches.move_to_end(block)
        return patch

    def put(self, block: Hashable, patch: Patch) -> None:
        """Hold `patch` as the most recently used, then drop the least recently used while over the budget."""
        replaced = self._patches.pop(block, None)
        if replaced is not None:
            self.nbytes -= patch_bytes(replaced)
        self._patches[block] = patch
        self.nbytes += patch_bytes(patch)
        while self.nbytes > self.budget and len(self._patches) > 1:
            self.nbytes -= patch_bytes(self._patches.popitem(last=False)[1])


def patch_bytes(patch: Patch) -> int:
    """The bytes of a patch's arrays, as numpy holds them."""
    return patch.rgb.nbytes + patch.valid.nbytes
