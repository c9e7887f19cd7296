"""Resampling from the input grid to the output grid, window by window.

Output pixel j of n covers input coordinate (j + 0.5) * m / n - 0.5 (pixel-centre convention),
the same mapping as GDAL and torch's align_corners=False. Computing it with explicit coordinates
makes any window (and any non-integer scale) land exactly where the whole image would, bitwise, so
memory stays bounded by the window and no process needs the upsampled scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..diffusion.grid import Patch

CUBIC_A = -0.75  # the cubic convolution kernel of PyTorch's and OpenCV's bicubic


def _cubic(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    near = ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0
    far = ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def cubic_taps(start: int, stop: int, in_len: int, out_len: int) -> tuple[np.ndarray, np.ndarray]:
    """For output pixels start..stop-1 of out_len: the 4 input pixels each reads (clamped to the border) and their
    float32 weights. Each pixel's taps come from its own index alone, so any window gets the same ones."""
    x = (np.arange(start, stop, dtype=np.float64) + 0.5) * in_len / out_len - 0.5
    floor = np.floor(x)
    t = (x - floor)[:, None]
    taps = np.clip(floor.astype(np.int64)[:, None] + np.arange(-1, 3), 0, in_len - 1)
    return taps, _cubic(t - np.arange(-1, 3)).astype(np.float32)


def bicubic_window(image: Any, out_h: int, out_w: int, rows: slice, cols: slice) -> np.ndarray:
    """Rows x cols of the bicubic upsampling of `image` (C, h, w; a numpy or zarr array) to (out_h, out_w), float32.

    Only the input pixels under the window are read. Every output pixel is the same sum of the same
    products in the same order whatever the window, so windows agree bitwise with the whole image and
    with each other. Rows or columns beyond out_h/out_w (canvas padding) repeat the border.
    """
    h, w = image.shape[-2:]
    ry, wy = cubic_taps(rows.start, rows.stop, h, out_h)
    rx, wx = cubic_taps(cols.start, cols.stop, w, out_w)
    y0, x0 = int(ry.min()), int(rx.min())
    src = np.asarray(image[:, y0 : int(ry.max()) + 1, x0 : int(rx.max()) + 1], dtype=np.float32)
    ry, rx = ry - y0, rx - x0
    vertical = wy[:, 0, None] * src[:, ry[:, 0]]
    for k in range(1, 4):
        vertical += wy[:, k, None] * src[:, ry[:, k]]
    out = wx[:, 0] * vertical[:, :, rx[:, 0]]
    for k in range(1, 4):
        out += wx[:, k] * vertical[:, :, rx[:, k]]
    return out


@dataclass(frozen=True)
class Upsampled:
    """The bicubic upsampling of a low-resolution image on the output canvas, computed wherever it is read.

    It stands for a scene-sized condition canvas that no process holds: the step loop reads it under each
    patch, the output writer in row blocks. Picklable as its image is (a store array on Dask workers).
    """

    image: Any  # (C, h, w) model units
    out_h: int  # the output grid (the canvas may be larger: its padding repeats the border)
    out_w: int
    canvas_h: int
    canvas_w: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image.shape[0], self.canvas_h, self.canvas_w)

    def window(self, rows: slice, cols: slice) -> np.ndarray:
        return bicubic_window(self.image, self.out_h, self.out_w, rows, cols)

    def read(self, patch: Patch) -> np.ndarray:
        return self.window(*patch.slices)

    def read_batch(self, patches: list[Patch]) -> np.ndarray:
        return np.stack([self.read(p) for p in patches])


def nearest_source(size_in: int, size_out: int, span: slice) -> np.ndarray:
    """For the output pixels `span` of size_out along one axis: the input pixel (of size_in) each one's centre
    falls in."""
    return np.minimum(((np.arange(span.start, span.stop) + 0.5) * size_in / size_out).astype(int), size_in - 1)


def covering(indices: np.ndarray) -> slice:
    """The input span that holds the input pixels `indices` (nearest_source)."""
    return slice(int(indices[0]), int(indices[-1]) + 1)


def nearest_block(rows: np.ndarray, cols: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The nearest-neighbour upsampling of the 2-D `source`, which holds the input pixels covering(rows) x
    covering(cols), onto the output pixels whose input pixels are `rows` x `cols` (nearest_source)."""
    return source[np.ix_(rows - rows[0], cols - cols[0])]
