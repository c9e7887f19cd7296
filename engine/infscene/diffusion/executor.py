"""What the step loop needs from wherever the model runs: per-batch work, how its pieces combine, and an executor.

The step loop (loop.py) describes each reverse step as per-batch work plus a fusion: every
patch's contribution is computed from its own window of the current state (SDVC), then the
contributions are combined into the next state in grid order. An Executor carries this out; the
executors themselves (this process's devices, a Dask cluster) live in infscene.execution.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable, Iterator, Optional, Protocol, Sequence, TypeVar

import numpy as np

from ..progress import ProgressTracker
from .canvas import Canvas
from .grid import Patch, PatchGrid
from .schedule import Denoiser

Item = TypeVar("Item")
Result = TypeVar("Result")


class Combine(str, Enum):
    """How a patch's piece enters the canvas: summed (fused modes) or pasted over (independent tiles)."""

    ADD = "add"
    PASTE = "paste"

    def into(self, view: np.ndarray, piece: np.ndarray) -> None:
        """Combine `piece` into `view` in place."""
        if self is Combine.ADD:
            view += piece
        else:
            view[...] = piece


class PatchWork(Protocol):
    """One transition of the canvas state, as work per batch of patches (see loop.py)."""

    grid: PatchGrid
    combine: Combine

    def __call__(self, denoiser: Denoiser, batch: list[Patch]) -> np.ndarray:
        """The batch's pieces, (B, channels, p, p)."""
        ...

    def units(self, batch: list[Patch]) -> int:
        """Work units (patch-steps) the batch counts for in progress."""
        ...


class Executor(Protocol):
    """What the step loop and the decode need from wherever the model runs."""

    state_channels: int

    def make_canvas(self, channels: int, height: int, width: int, name: str, chunk: Optional[int] = None) -> Canvas:
        """A scene-sized map that the executor's workers can read (RAM or memory-mapped here; a store there, in
        chunks of `chunk` pixels, the unit a worker writes whole)."""
        ...

    def map(self, work: Callable[[Denoiser, Item], Result], items: Sequence[Item]) -> Iterator[Result]:
        """work(denoiser, item) for every item, results in the order of `items`."""
        ...

    def fuse(self, work: PatchWork, batches: list[list[Patch]], target: Canvas, tracker: ProgressTracker) -> None:
        """Set `target` to the grid-order combination of every batch's pieces."""
        ...
