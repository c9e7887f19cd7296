"""Scene-sized float arrays that live in RAM when small and in memory-mapped files when large.

The step loop keeps a few scene-sized maps (the state, the next state, the condition, W and S).
When together they exceed a threshold (512 MB by default) they are np.memmap files in a work
folder, so a gigapixel output needs disk, not RAM; the OS pages in only the patches being processed.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .grid import Patch

DEFAULT_MEMMAP_ABOVE_BYTES = 512 * 1024**2


class Canvas:
    """A (channels, height, width) float32 array with patch-wise reads and accumulation."""

    def __init__(self, channels: int, height: int, width: int, folder: Optional[Path] = None, name: str = "canvas") -> None:
        self.shape = (channels, height, width)
        if folder is None:
            self.data = np.zeros(self.shape, dtype=np.float32)
        else:
            self.data = np.memmap(folder / f"{name}.f32", dtype=np.float32, mode="w+", shape=self.shape)

    def read(self, patch: Patch) -> np.ndarray:
        rows, cols = patch.slices
        return np.array(self.data[:, rows, cols])

    def read_batch(self, patches: list[Patch]) -> np.ndarray:
        return np.stack([self.read(p) for p in patches])

    def add(self, patch: Patch, values: np.ndarray) -> None:
        rows, cols = patch.slices
        self.data[:, rows, cols] += values

    def paste(self, patch: Patch, values: np.ndarray) -> None:
        rows, cols = patch.slices
        self.data[:, rows, cols] = values

    def clear(self) -> None:
        self.data[...] = 0.0


class CanvasFactory:
    """Makes a run's canvases, all in RAM or all memory-mapped in one folder that it owns.

    The choice is made once per run from the total size of its canvases, so host memory stays
    below the threshold whatever the scene size.
    """

    def __init__(self, folder: Optional[Path]) -> None:
        self.folder = folder
        self._count = 0

    def __call__(self, channels: int, height: int, width: int) -> Canvas:
        self._count += 1
        return Canvas(channels, height, width, self.folder, f"canvas{self._count}")


@contextmanager
def canvas_factory(on_disk: bool, work_dir: Optional[Path] = None) -> Iterator[CanvasFactory]:
    """A factory for in-RAM canvases, or for memory-mapped ones deleted when the block ends, however it ends."""
    if not on_disk:
        yield CanvasFactory(None)
        return
    with tempfile.TemporaryDirectory(prefix="infscene-", dir=work_dir) as folder:
        yield CanvasFactory(Path(folder))
