"""Where the model work of a run is done: this process's devices, or a Dask cluster (scaleout.py).

The step loop describes each reverse step as per-batch work plus a fusion (diffusion/executor.py); an
executor carries it out:

- `LocalExecutor`: batches on this process's devices (workers.DenoiserPool), contributions added to
  an in-RAM or memory-mapped canvas as they arrive, in grid order;
- `scaleout.DaskExecutor`: batches as tasks on Dask workers, contributions left in a shared zarr
  store (store.py), each chunk of the next state then summed by a task in grid order.

Both give each pixel the same float additions in the same order, and both evaluate the same fixed
batches, so the output does not depend on the executor, the number of workers or task placement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch

from ..diffusion.canvas import Canvas, CanvasFactory
from ..diffusion.executor import Item, PatchWork, Result
from ..diffusion.grid import Patch
from ..diffusion.schedule import Denoiser
from ..models.registry import family_of
from ..progress import ProgressTracker
from .determinism import FixedBatchDenoiser
from .output_check import CheckedDenoiser
from .workers import DenoiserPool


@dataclass(frozen=True)
class DenoiserSpec:
    """How a loaded model becomes the step loop's Denoiser; small and picklable, so workers build their own."""

    scale: float
    lr_consistency: bool
    precision: str  # fp32 or bf16 (models/precision.py), decided by the plan
    batch_size: int  # every step-loop model call is made at this size (determinism.py)
    model_dir: str = ""  # the model folder, named when its output is not finite (output_check.py)

    def build(self, model: torch.nn.Module) -> Denoiser:
        """The denoiser of the loaded model's family (registry), on the model's device, at the run's fixed batch size,
        its output checked."""
        family = family_of(model.config).denoiser(model, self.scale, self.lr_consistency, self.precision)
        return CheckedDenoiser(FixedBatchDenoiser(family, self.batch_size), self.model_dir)


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
