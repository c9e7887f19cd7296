"""One tile, from wherever it can come cheapest: the disk cache, the source itself, or super-resolved blocks.

Zooms at native resolution and coarser show the source resampled (the model adds nothing there); finer
zooms up to max_zoom are warped from a mosaic of the super-resolved blocks under the tile (plus a margin for
the resampling kernel). Blocks come from memory (those last used, within a budget in bytes), the disk cache,
or the scheduler; tiles and blocks go to the cache as they are made. Warping and PNG encoding run in a small
thread pool, beside the model's thread, so cached tiles keep flowing while a block is being made.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, TypeVar

from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..errors import Cancelled, InfSceneError
from ..protocol import TileActivity
from .block_runs import make_block, read_block
from .blocks import BlockId
from .cache import DiskCache
from .render import Patch, encode_png, mosaic, transparent_tile, warp_to_tile
from .scheduler import Scheduler
from .source import Source
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


class Tiles:
    """Makes tiles of one source; `scheduler.run()` must be running as a task of the same event loop."""

    def __init__(self, source: Source, cache: DiskCache, scratch: Path, stopping: threading.Event,
                 log: Callable[[str], None]) -> None:
        self.source, self.cache, self._scratch, self._stopping, self._log = source, cache, scratch, stopping, log
        self.scheduler: Scheduler[BlockId, Patch] = Scheduler(self._make_block)
        self._memory = BlockMemory(MEMORY_BUDGET_BYTES)
        self._pool = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="infscene-tile")
        self._waiting: dict[int, list[BlockId]] = {}  # tile requests in flight -> the blocks they need
        self._ids = itertools.count()
        self.done = 0
        self.cached = 0

    async def tile(self, zoom: int, x: int, y: int) -> bytes:
        """The PNG of tile z/x/y (zoom at most max_zoom): transparent where there is no source."""
        zooms = self.source.zooms
        window = self._window_under(zoom, x, y)
        if zoom < zooms.min_zoom or window is None:
            self.done += 1
            return transparent_tile()
        path = self.cache.tile_path(zoom, x, y)
        data = await self._in_pool(self.cache.read, path)
        if data is not None:
            self.done += 1
            self.cached += 1
            return data
        bounds = tile_bounds(zoom, x, y)
        request = next(self._ids)
        if zooms.uses_model(zoom):
            blocks = self.source.grid.blocks_under(window)
            self._waiting[request] = blocks
            try:
                patches = await asyncio.gather(*(self._block(b) for b in blocks))
                data = await self._in_pool(self._from_blocks, patches, bounds)
            finally:
                del self._waiting[request]
        else:
            self._waiting[request] = []
            try:
                step = max(1, math.floor(pixel_size(zoom) / self.source.pixel_3857))
                data = await self._in_pool(self._from_source, window, step, bounds)
            finally:
                del self._waiting[request]
        await self._in_pool(self.cache.write, path, data)
        self.done += 1
        return data

    def activity(self) -> TileActivity:
        """Tiles waiting for a block nobody has started, tiles being made otherwise, and tiles finished."""
        queued = sum(1 for blocks in self._waiting.values()
                     if blocks and not any(self.scheduler.started(b) or b in self._memory for b in blocks))
        return TileActivity(queued=queued, rendering=len(self._waiting) - queued, done=self.done, cached=self.cached)

    def close(self) -> None:
        self.scheduler.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _window_under(self, zoom: int, x: int, y: int) -> Optional[Window]:
        """The source pixels under tile z/x/y and the kernel's margin around it; None when the tile misses the source."""
        grid = self.source.grid
        left, bottom, right, top = transform_bounds(WEB_MERCATOR, self.source.crs, *tile_bounds(zoom, x, y),
                                                    densify_pts=21)
        inverse = ~grid.transform
        cols, rows = zip(*(inverse * corner for corner in ((left, bottom), (left, top), (right, bottom), (right, top))))
        if not all(math.isfinite(v) for v in (*cols, *rows)):
            return None
        margin = MARGIN * pixel_size(zoom) / self.source.pixel_3857  # in source pixels
        col0, row0 = max(math.floor(min(cols) - margin), 0), max(math.floor(min(rows) - margin), 0)
        col1 = min(math.ceil(max(cols) + margin), grid.width)
        row1 = min(math.ceil(max(rows) + margin), grid.height)
        if col0 >= col1 or row0 >= row1:
            return None
        return Window(col0, row0, col1 - col0, row1 - row0)

    async def _block(self, block: BlockId) -> Patch:
        patch = self._memory.get(block)
        if patch is None:
            patch = await self._in_pool(self._cached_block, block) or await self.scheduler.get(block)
            self._memory.put(block, patch)
        return patch

    def _cached_block(self, block: BlockId) -> Optional[Patch]:
        path = self.cache.block_path(block)
        if not self.cache.has(path):
            return None
        try:
            return read_block(self.source, block, path)
        except InfSceneError as exc:  # damaged by hand: made again
            self._log(f"cached block {path.name} is unreadable ({exc}): making it again")
            return None

    def _make_block(self, block: BlockId) -> Patch:
        """In the model's thread: super-resolve the block into the cache (or scratch), then read it back."""
        if self._stopping.is_set():
            raise Cancelled("the server is stopping")
        cached = self.cache.enabled
        path = self.cache.block_path(block) if cached else self._scratch / f"{block[0]}_{block[1]}.tif"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            make_block(self.source, block, path, self._stopping.is_set)
        except (InfSceneError, OSError) as exc:
            problem = self.cache.problem() if cached and not isinstance(exc, Cancelled) else None
            if not problem:
                raise
            self.cache.disable(problem)
            return self._make_block(block)
        patch = read_block(self.source, block, path)
        if cached:
            self.cache.added(path)
        else:
            path.unlink(missing_ok=True)
        return patch

    def _from_blocks(self, patches: list[Patch], bounds: tuple[float, float, float, float]) -> bytes:
        return encode_png(warp_to_tile(mosaic(patches, self.source.crs), self.source.crs, bounds))

    def _from_source(self, window: Window, step: int, bounds: tuple[float, float, float, float]) -> bytes:
        return encode_png(warp_to_tile(self.source.read(window, step), self.source.crs, bounds))

    async def _in_pool(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)


class BlockMemory:
    """Decoded blocks by id, least recently used out first once their arrays hold more than `budget` bytes.

    Counted in bytes, not blocks: a block's size grows with the square of the scale and of --block, so a count
    bounds nothing. The block put last is always kept, even alone over the budget: the tile asking for it needs it.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.nbytes = 0  # of every array held
        self._patches: OrderedDict[BlockId, Patch] = OrderedDict()

    def __contains__(self, block: object) -> bool:
        return block in self._patches

    def get(self, block: BlockId) -> Optional[Patch]:
        """The block if it is held (now the most recently used), else None."""
        patch = self._patches.get(block)
        if patch is not None:
            self._patches.move_to_end(block)
        return patch

    def put(self, block: BlockId, patch: Patch) -> None:
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
