"""The input window as a run reads it: its statistics in passes over row blocks, then model units block by block.

A gigapixel output comes from an input window of tens of megapixels, so no process holds the window
whole. What the run needs of it as a whole (which pixels are valid, the stretch of bands that are not
8-bit, the fill value of nodata pixels, each band's bit depth) is gathered in passes over row blocks
(`window_statistics`); the window is then read in model units wherever it is needed, one block at a
time (`ModelBands`): into the low-resolution canvas the model work reads, and under each output row
block when the output is written. Bitwise the same whichever blocks it is read in.

Because the file is read again and again over the run's life, a file written to during the run would be
read as two files: an input overwritten in place once gave an output with its visible bands from the old
file and its NIR band, read at the end, from the new one (exit 0). So the run takes the file's identity
when it is planned (`FileIdentity`) and checks it before its outputs appear (`check_unchanged`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..modelformat.contract import ModelContract
from ..errors import InfSceneError
from .guided import GuidedBands
from .io import read_block, reading, valid_pixels, value_range
from .blocks import blocks, window_of
from .scaling import MAX_SAMPLE_PIXELS, BandScaling, stretch_from_sample


@dataclass(frozen=True)
class WindowStatistics:
    """What the run needs of the window as a whole, in a few numbers per band."""

    scaling: BandScaling
    fill: np.ndarray  # per band, input units: the mean of its valid pixels, given to the invalid ones
    ranges: tuple[tuple[float, float], ...]  # per band: the values an output band may take
    all_valid: bool


@dataclass(frozen=True)
class FileIdentity:
    """What tells, without reading it, that a file is no longer the one a run started from: its device and inode
    (another file renamed into its place), its size and modification time (a write), and its status-change time,
    which every write, touch or chmod sets to the clock and no user can set back (a write with the modification
    time restored). A touch or a chmod is taken as a change too: a run refused by mistake costs a rerun, a map of
    two files mixed costs a wrong map."""

    path: Path  # the file on this machine that GDAL reads (for a /vsizip/ input, the archive)
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        found = os.stat(path)
        return cls(path, found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)

    def change(self) -> Optional[str]:
        """How the file at this identity's path differs from the one it was taken of, in the user's terms (None: it
        does not)."""
        try:
            now = FileIdentity.of(self.path)
        except OSError:
            return "it was moved or deleted"
        if (now.device, now.inode) != (self.device, self.inode):
            return "another file was put in its place"
        return None if now == self else "it was written to, or its times or permissions were changed"

    def rewritten(self) -> bool:
        """Whether the file now has another size or modification time: what a run's fingerprint, and so its
        checkpoint's key, holds of it. False when the file cannot be seen (it may come back as it was)."""
        try:
            now = FileIdentity.of(self.path)
        except OSError:
            return False
        return (now.size, now.mtime_ns) != (self.size, self.mtime_ns)


def check_unchanged(identity: Optional[FileIdentity]) -> None:
    """Refuse, in one line, to go on with an input that is no longer the file the run was planned on: called before
    the outputs are renamed into place, so a run that read two files writes nothing. None: a remote input (/vsicurl/,
    /vsis3/), whose change no local look can see."""
    change = identity.change() if identity is not None else None
    if change is not None:
        raise InfSceneError(f"the input {identity.path} changed while the run was using it ({change}), so the output "
                            "would mix two files: nothing was written; rerun once the input is no longer being changed")


INPUT_BLOCK_PIXELS = 250_000  # input pixels read at a time (about 30 bytes a pixel while they are converted)


def _blocks(window: Window) -> Iterator[Window]:
    """The window's row blocks, as windows of the raster."""
    for rows, cols in blocks(int(window.height), int(window.width), INPUT_BLOCK_PIXELS):
        yield window_of(window, rows, cols)


def window_statistics(ds: rasterio.DatasetReader, window: Window, bands: Sequence[int], alpha: Optional[int],
                      dtype: np.dtype, config: ModelContract, whole_raster: bool = False) -> WindowStatistics:
    """Valid count, means and extremes in one pass; for bands that are not 8-bit, the stretch's sample in a second.

    With `whole_raster` (a map-anchored run, raster/anchor.py) the stretch and the fill of invalid pixels come from
    a reduced read of the whole raster instead (`raster_sample`): every run of the raster then gives a pixel the same
    model units, so runs of neighbouring extents of a 16-bit Planet scene join as 8-bit ones do."""
    count, sums = 0, np.zeros(len(bands))
    low, high = np.full(len(bands), np.inf), np.full(len(bands), -np.inf)
    all_valid = True
    for block in _blocks(window):
        data = read_block(ds, block, bands, alpha)
        valid_values = data.values[:, data.valid]
        count += valid_values.shape[1]
        all_valid &= bool(data.valid.all())
        if valid_values.size:
            sums += valid_values.sum(axis=1, dtype=np.float64)
            low, high = np.minimum(low, valid_values.min(axis=1)), np.maximum(high, valid_values.max(axis=1))
    if count == 0:
        raise InfSceneError("the extent has no valid pixels (all nodata or transparent)")
    ranges = tuple(value_range(ds, band, lo, hi) for band, lo, hi in zip(bands, low, high))
    fill = (sums / count).astype(np.float32)
    stretched = np.dtype(dtype) != np.uint8
    sample = None
    if whole_raster and (stretched or not all_valid):  # 8-bit with every pixel valid needs neither stretch nor fill
        sample = raster_sample(ds, bands, alpha)
        if sample.shape[1]:
            fill = sample.mean(axis=1, dtype=np.float64).astype(np.float32)
    elif stretched:
        sample = _stretch_sample(ds, window, bands, alpha, count)
    scaling = stretch_from_sample(sample if stretched else None, len(bands), dtype, config)
    return WindowStatistics(scaling, fill, ranges, all_valid)


def raster_sample(ds: rasterio.DatasetReader, bands: Sequence[int], alpha: Optional[int]) -> np.ndarray:
    """The valid pixels (bands, n) of the whole raster read at most MAX_SAMPLE_PIXELS large (GDAL's nearest
    decimation, from overviews where the file has them): the same for every run of the raster. Kept for the last
    few files (by path, size and modification time): a live layer runs the same raster block after block."""
    path = Path(ds.name)
    if not path.is_file():
        return _read_sample(ds, tuple(bands), alpha)
    stat = path.stat()
    return _file_sample(str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple(bands), alpha)


@lru_cache(maxsize=4)
def _file_sample(path: str, size: int, mtime_ns: int, bands: tuple[int, ...], alpha: Optional[int]) -> np.ndarray:
    with rasterio.open(path) as ds:
        sample = _read_sample(ds, bands, alpha)
    sample.setflags(write=False)  # shared by every run that asks again
    return sample


def _read_sample(ds: rasterio.DatasetReader, bands: tuple[int, ...], alpha: Optional[int]) -> np.ndarray:
    shrink = max(1.0, (ds.height * ds.width / MAX_SAMPLE_PIXELS) ** 0.5)
    shape = (max(1, int(ds.height / shrink)), max(1, int(ds.width / shrink)))
    with reading(ds.name):
        values = ds.read(list(bands), out_shape=(len(bands), *shape)).astype(np.float32)
        valid = valid_pixels(ds, bands, alpha, out_shape=shape)  # as read_block
    valid &= np.all(np.isfinite(values), axis=0)
    return values[:, valid]


def _stretch_sample(ds: rasterio.DatasetReader, window: Window, bands: Sequence[int], alpha: Optional[int],
                    count: int) -> np.ndarray:
    """Every k-th valid pixel in row-major order (k = count // MAX_SAMPLE_PIXELS): at most that many, whatever the size."""
    step = max(1, count // MAX_SAMPLE_PIXELS) if count > MAX_SAMPLE_PIXELS else 1
    picked, seen = [], 0
    for block in _blocks(window):
        data = read_block(ds, block, bands, alpha)
        valid_values = data.values[:, data.valid]
        first = (-seen) % step  # the index, in this block, of the next pixel whose global index is a multiple of step
        picked.append(valid_values[:, first::step])
        seen += valid_values.shape[1]
    return np.concatenate(picked, axis=1)


@dataclass(frozen=True)
class ModelBands:
    """Bands of the window in model units (invalid pixels filled), read from the file where they are sliced.

    Sliced like a (bands, h, w) array; only the rows and columns asked for are read.
    """

    ds: rasterio.DatasetReader
    window: Window
    bands: tuple[int, ...]
    alpha: Optional[int]
    statistics: WindowStatistics
    indices: tuple[int, ...]  # which of the statistics' bands these are

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.indices), int(self.window.height), int(self.window.width))

    def read(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(model values, valid, alpha) of rows x cols of the window."""
        data = read_block(self.ds, window_of(self.window, rows, cols), [self.bands[i] for i in self.indices], self.alpha)
        fill = self.statistics.fill[list(self.indices)]
        filled = np.where(data.valid[None], data.values, fill[:, None, None])
        return self.statistics.scaling.subset(self.indices).to_model(filled), data.valid, data.alpha

    def __getitem__(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        channels, rows, cols = index
        height, width = self.shape[1:]
        return self.read(slice(*rows.indices(height)[:2]), slice(*cols.indices(width)[:2]))[0][channels]


def fill_lr(source: ModelBands, target: np.ndarray) -> None:
    """Write the whole window of `source` into `target` (a canvas's array) in row blocks."""
    for rows, cols in blocks(*source.shape[1:], INPUT_BLOCK_PIXELS):
        target[:, rows, cols] = source.read(rows, cols)[0]


def guided_bands(visible: ModelBands, extra: ModelBands) -> GuidedBands:
    """The extra bands' slopes on the visible guide, summed over row blocks of the window."""
    moments = GuidedBands.moments(len(extra.indices))
    for rows, cols in blocks(*visible.shape[1:], INPUT_BLOCK_PIXELS):
        seen, valid, _ = visible.read(rows, cols)
        moments.add(seen, extra.read(rows, cols)[0], valid)
    return moments.fit()
