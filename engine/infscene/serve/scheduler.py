"""Blocks made one at a time, in the order asked, each once, and only while someone still wants it.

The model saturates the CPU (or the GPU), so running two blocks at once would only make both late: one
worker thread makes blocks from a queue. A block asked for by many tiles at once is queued once and every
asker awaits the same future. When an asker goes away (its HTTP client disconnected, so aiohttp cancelled
its handler) it stops counting; a queued block nobody counts for any more is dropped before it starts, so
panning away from a region does not leave minutes of unwanted work in front of the new view. A block
already being made is finished (it is likely wanted again, and is cached).
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, Optional, TypeVar

Key = TypeVar("Key", bound=Hashable)
Result = TypeVar("Result")


@dataclass
class _Job(Generic[Result]):
    future: asyncio.Future[Result]
    askers: int = 0
    started: bool = False


@dataclass
class Counts:
    made: int = 0
    dropped: int = 0  # queued, then no longer wanted by anyone before they started


class Scheduler(Generic[Key, Result]):
    """`await get(key)` returns `make(key)`, run in the worker thread; `run()` is the worker loop (a task)."""

    def __init__(self, make: Callable[[Key], Result]) -> None:
        self._make = make
        self._jobs: dict[Key, _Job[Result]] = {}
        self._queue: deque[Key] = deque()
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infscene-block")
        self.counts = Counts()

    async def get(self, key: Key) -> Result:
        job = self._jobs.get(key)
        if job is None:
            job = _Job(asyncio.get_running_loop().create_future())
            job.future.add_done_callback(_retrieve)
            self._jobs[key] = job
            self._queue.append(key)
            self._wake.set()
        job.askers += 1
        try:
            return await asyncio.shield(job.future)
        finally:
            job.askers -= 1
            if job.askers == 0 and not job.started and self._jobs.get(key) is job:
                self._drop(key, job)

    def started(self, key: Key) -> bool:
        job = self._jobs.get(key)
        return job is not None and job.started

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                key = self._queue.popleft()
                job = self._jobs[key]
                job.started = True
                try:
                    job.future.set_result(await loop.run_in_executor(self._pool, self._make, key))
                    self.counts.made += 1
                except Exception as exc:  # the askers get it (one log line and an HTTP error each)
                    job.future.set_exception(exc)
                finally:
                    del self._jobs[key]

    def close(self) -> None:
        """Wait for the block being made (it stops early when its cancel check says so) and end the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _drop(self, key: Key, job: _Job[Result]) -> None:
        self._queue.remove(key)
        del self._jobs[key]
        job.future.cancel()
        self.counts.dropped += 1


def _retrieve(future: asyncio.Future[object]) -> Optional[BaseException]:
    """Mark a failure as seen: a block whose askers all left must not log 'exception was never retrieved'."""
    return None if future.cancelled() else future.exception()
