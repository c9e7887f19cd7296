"""Spreads patch batches over several devices (GPUs, or CPU workers) while the step loop stays in order.

With SDVC a patch's contribution depends only on its own window of the current state and on the
fixed weight maps, so the batches of one reverse step can be evaluated anywhere and at the same
time. The pool evaluates them concurrently, one batch per device at a time, and hands the results
back in grid order, so the step loop adds the contributions exactly as a single device would: the
output does not depend on the number of devices. Each device holds one model copy and one batch,
so device memory does not grow with the scene.
"""
from __future__ import annotations

import queue
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from ..diffusion.schedule import Denoiser

Item = TypeVar("Item")
Result = TypeVar("Result")
BATCHES_IN_FLIGHT_PER_DEVICE = 2  # one running, one read and waiting: devices never idle on host reads


class DenoiserPool:
    """One Denoiser per device and, with several devices, a thread per device; use as a context manager."""

    def __init__(self, denoisers: Sequence[Denoiser]) -> None:
        if not denoisers:
            raise ValueError("a DenoiserPool needs at least one denoiser")
        self.denoisers = list(denoisers)
        self.size = len(self.denoisers)
        self._free: queue.Queue[Denoiser] = queue.Queue()
        for denoiser in self.denoisers:
            self._free.put(denoiser)
        self._executor = (ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="infscene-device")
                          if self.size > 1 else None)

    @property
    def state_channels(self) -> int:
        return self.denoisers[0].state_channels

    def __enter__(self) -> DenoiserPool:
        return self

    def __exit__(self, kind: Optional[type], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        """Drop queued work and wait for the batches running now (at most one per device)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _on_free_device(self, work: Callable[[Denoiser, Item], Result], item: Item) -> Result:
        denoiser = self._free.get()
        try:
            return work(denoiser, item)
        finally:
            self._free.put(denoiser)

    def map(self, work: Callable[[Denoiser, Item], Result], items: Iterable[Item]) -> Iterator[Result]:
        """work(denoiser, item) for every item on whichever device is free, results in the order of `items`.

        Items are taken lazily, a few per device ahead, so host memory stays bounded too. An error
        in any work (a CUDA out-of-memory, a cancel) is raised here, at its item.
        """
        if self._executor is None:  # one device: work inline, as a plain loop (no thread beside torch's own)
            yield from (work(self.denoisers[0], item) for item in items)
            return
        pending: deque[Future[Result]] = deque()
        for item in items:
            pending.append(self._executor.submit(self._on_free_device, work, item))
            if len(pending) >= BATCHES_IN_FLIGHT_PER_DEVICE * self.size:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
