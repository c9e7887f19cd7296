"""A run's scene-sized arrays in a chunked zarr store on disk, which every worker process can open.

With scale-out (local.py, scaleout.py) the state of the step loop does not live in one
process: workers read the windows their patches need and write their results as whole chunks,
so many processes on many machines write the same store without locks (zarr writes each chunk
to a temporary file and renames it, so a chunk is never half-written). The same store holds the
checkpoint of a run (checkpoint.py), so a store on persistent disk is also what `--resume`
continues from. Arrays are float32 and uncompressed: they are read and written every reverse
step, and noise-like states do not compress.
"""
from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zarr

from ..diffusion.canvas import Canvas
from ..errors import InfSceneError
from ..raster.blocks import tiles

DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


@contextmanager
def disk_full_is_an_error(folder: Path) -> Iterator[None]:
    """Turn a write that ran out of space (here or in a worker) into one line that names the folder."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise InfSceneError(f"the disk of {folder} is full ({exc.strerror}): free some space or give --work-dir on a "
                            "larger disk, then rerun with --resume") from exc


class StoreCanvas(Canvas):
    """A Canvas whose array is a zarr array in a RunStore: the same reads and writes, from any process.

    It pickles as the array's location, so a task shipped to a worker opens the same array there.
    """

    def __init__(self, array: zarr.Array, root: Path, name: str) -> None:
        self.shape = tuple(array.shape)
        self.data = array
        self.root = root
        self.name = name

    @property
    def chunk(self) -> tuple[int, int]:
        """The (rows, cols) of one chunk: the unit that one process writes whole."""
        return tuple(self.data.chunks[1:])  # type: ignore[return-value]

    def regions(self, chunks: int = 1) -> list[tuple[slice, slice]]:
        """The canvas cut into blocks of chunks x chunks whole chunks, as (rows, cols) slices, row-major."""
        (_, height, width), (ch, cw) = self.shape, self.chunk
        return list(tiles(height, width, (ch * chunks, cw * chunks)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_open_canvas, (str(self.root), self.name))


def _open_canvas(root: str, name: str) -> StoreCanvas:
    return StoreCanvas(zarr.open_array(Path(root) / name, mode="r+"), Path(root), name)


class SlotArray:
    """One (channels, size, size) slot per patch: where workers leave a step's per-patch results.

    A slot is one chunk, written whole by the task that computed it, and read (whole or in part)
    by the tasks that fuse the canvas chunks it overlaps.
    """

    def __init__(self, array: zarr.Array, root: Path, name: str) -> None:
        self.data = array
        self.root = root
        self.name = name

    def write(self, index: int, values: np.ndarray) -> None:
        self.data[index] = values

    def read(self, index: int, rows: slice, cols: slice) -> np.ndarray:
        return self.data[index, :, rows, cols]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_open_slots, (str(self.root), self.name))


def _open_slots(root: str, name: str) -> SlotArray:
    return SlotArray(zarr.open_array(Path(root) / name, mode="r+"), Path(root), name)


class RunStore:
    """A folder holding one run's named float32 arrays (a zarr group)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.group = zarr.open_group(self.root, mode="a")

    def _array(self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> zarr.Array:
        if name in self.group:
            existing = self.group[name]
            if tuple(existing.shape) == shape:  # whatever its chunks (a resumed run may use another executor)
                return existing  # type: ignore[return-value]
            del self.group[name]
        return self.group.create_array(name, shape=shape, chunks=chunks, dtype="float32", fill_value=0.0, compressors=None)

    def canvas(self, name: str, channels: int, height: int, width: int, chunk: int) -> StoreCanvas:
        """The canvas `name`, made (zeros, in chunks of `chunk` rows and columns) or reopened as it is when its shape
        matches."""
        array = self._array(name, (channels, height, width), (channels, min(chunk, height), min(chunk, width)))
        return StoreCanvas(array, self.root, name)

    def slots(self, name: str, count: int, channels: int, size: int) -> SlotArray:
        array = self._array(name, (count, channels, size, size), (1, channels, size, size))
        return SlotArray(array, self.root, name)

    def has(self, name: str) -> bool:
        return name in self.group
