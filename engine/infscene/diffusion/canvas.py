"""Scene-sized float arrays that live in RAM when small and in memory-mapped files when large.

The step loop keeps a few scene-sized maps (the state, the next state, the condition, W and S).
When together they exceed a threshold (512 MB by default) they are np.memmap files in the run's
work folder (workspace.py), so a gigapixel output needs disk, not RAM; the OS pages in only the
patches being processed. Their disk blocks are allocated when they are made, not on first touch:
a sparse file on a full disk kills the process with SIGBUS mid-run, an allocated one fails at once
with a one-line message.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np

from ..errors import InfSceneError
from ..protocol import format_bytes
from .grid import Patch

DEFAULT_MEMMAP_ABOVE_BYTES = 512 * 1024**2


class Canvas:
    """A (channels, height, width) float32 array with patch-wise reads and accumulation."""

    def __init__(self, channels: int, height: int, width: int, folder: Optional[Path] = None, name: str = "canvas") -> None:
        self.shape = (channels, height, width)
        if folder is None:
            self.data = np.zeros(self.shape, dtype=np.float32)
        else:
            path = folder / f"{name}.f32"
            allocate_file(path, int(np.prod(self.shape)) * 4)
            self.data = np.memmap(path, dtype=np.float32, mode="r+", shape=self.shape)

    @property
    def chunk(self) -> tuple[int, int]:
        """The (rows, cols) a reader should take whole to read each stored byte once: any window of an array in
        memory or memory-mapped costs only its own bytes, so the whole canvas is one chunk."""
        return self.shape[1], self.shape[2]

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


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}


def _write_zeros(handle: BinaryIO, size: int) -> None:
    block = bytes(1 << 20)
    for start in range(0, size, len(block)):
        handle.write(block[: min(len(block), size - start)])
    handle.flush()


def allocate_file(path: Path, size: int) -> None:
    """Create `path` with `size` bytes of real (not sparse) disk blocks, or fail with one line."""
    with open(path, "wb") as handle:
        try:
            try:
                os.posix_fallocate(handle.fileno(), 0, size)  # type: ignore[attr-defined]
            except AttributeError:  # no fallocate (macOS, Windows)
                _write_zeros(handle, size)
            except OSError as exc:
                if exc.errno not in _NO_FALLOCATE:
                    raise
                _write_zeros(handle, size)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            raise InfSceneError(
                f"not enough disk space in the work folder {path.parent.parent} for a {format_bytes(size)} canvas; "
                "free some space or give --work-dir on a larger disk"
            ) from exc


class CanvasFactory:
    """Makes a run's canvases, all in RAM (folder None) or all memory-mapped in the run's work folder.

    The choice is made once per run from the total size of its canvases, so host memory stays
    below the threshold whatever the scene size.
    """

    def __init__(self, folder: Optional[Path]) -> None:
        self.folder = folder
        self._count = 0

    def __call__(self, channels: int, height: int, width: int) -> Canvas:
        self._count += 1
        return Canvas(channels, height, width, self.folder, f"canvas{self._count}")
