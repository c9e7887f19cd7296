"""Where the model work of a run is done: this process's devices, or a Dask cluster (scaleout.py).

The step loop (joint.py) describes each reverse step as per-batch work plus a fusion: every
patch's contribution is computed from its own window of the current state (SDVC), then the
contributions are combined into the next state in grid order. An executor carries this out:

- `LocalExecutor`: batches on this process's devices (workers.DenoiserPool), contributions added to
  an in-RAM or memory-mapped canvas as they arrive, in grid order;
- `scaleout.DaskExecutor`: batches as tasks on Dask workers, contributions left in a shared zarr
  store (store.py), each chunk of the next state then summed by a task in grid order.

Both give each pixel the same float additions in the same order, and both evaluate the same fixed
batches, so the output does not depend on the executor, the number of workers or task placement.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator, Optional, Protocol, Sequence, TypeVar

import numpy as np
import torch

from ..diffusion.canvas import Canvas, CanvasFactory
from ..models.e2diffsr.denoiser import LatentPatchDenoiser
from ..diffusion.grid import Patch, PatchGrid
from ..progress import ProgressTracker
from ..diffusion.schedule import Denoiser, PatchDenoiser
from .workers import DenoiserPool

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
    """One transition of the canvas state, as work per batch of patches (see joint.py)."""

    grid: PatchGrid
    combine: Combine

    def __call__(self, denoiser: Denoiser, batch: list[Patch]) -> np.ndarray:
        """The batch's pieces, (B, channels, p, p)."""
        ...

    def units(self, batch: list[Patch]) -> int:
        """Work units (patch-steps) the batch counts for in progress."""
        ...


@dataclass(frozen=True)
class DenoiserSpec:
    """How a loaded model becomes the step loop's Denoiser; small and picklable, so workers build their own."""

    family: str
    scale: float
    lr_consistency: bool

    def build(self, model: torch.nn.Module) -> Denoiser:
        if self.family == "e2diffsr":
            return LatentPatchDenoiser(model, self.scale)
        return PatchDenoiser(model, self.scale, self.lr_consistency)


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


class LocalExecutor:
    """The model work on this process's devices; canvases in RAM or memory-mapped in the run's folder."""

    def __init__(self, denoisers: Sequence[Denoiser], canvases: CanvasFactory) -> None:
        self.pool = DenoiserPool(denoisers)
        self.canvases = canvases
        self.state_channels = self.pool.state_channels

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.__exit__(None, None, None)

    def make_canvas(self, channels: int, height: int, width: int, name: str, chunk: Optional[int] = None) -> Canvas:
        return self.canvases(channels, height, width)

    def map(self, work: Callable[[Denoiser, Item], Result], items: Sequence[Item]) -> Iterator[Result]:
        return self.pool.map(work, items)

    def fuse(self, work: PatchWork, batches: list[list[Patch]], target: Canvas, tracker: ProgressTracker) -> None:
        target.clear()
        for batch, pieces in zip(batches, self.pool.map(work, batches)):
            tracker.check_cancel()
            for patch, piece in zip(batch, pieces):
                rows, cols = patch.slices
                work.combine.into(target.data[:, rows, cols], piece)
            tracker.advance(work.units(batch))
