"""Resampling from the input grid to the output grid, row block by row block.

Output pixel j of n covers input coordinate (j + 0.5) * m / n - 0.5 (pixel-centre convention),
the same mapping as GDAL and torch's align_corners=False. Computing it with explicit coordinates
makes any row block (and any non-integer scale) land exactly where the whole image would, so
memory stays bounded by the block.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.nn import functional as F

BLOCK_PIXELS = 2_000_000


def row_blocks(height: int, width: int) -> Iterator[tuple[int, int]]:
    """Row ranges [r0, r1) of about BLOCK_PIXELS pixels each."""
    rows = max(1, BLOCK_PIXELS // max(1, width))
    for r0 in range(0, height, rows):
        yield r0, min(height, r0 + rows)


def _normalised_centres(start: int, stop: int, out_size: int) -> torch.Tensor:
    return (torch.arange(start, stop, dtype=torch.float64) + 0.5) / out_size * 2.0 - 1.0


def bicubic_rows(image: np.ndarray, out_h: int, out_w: int, r0: int, r1: int, width: int) -> np.ndarray:
    """Rows [r0, r1) and columns [0, width) of the bicubic upsampling of `image` (C, h, w) to (out_h, out_w).

    Rows or columns beyond out_h/out_w (canvas padding) repeat the border.
    """
    ys = _normalised_centres(r0, r1, out_h)
    xs = _normalised_centres(0, width, out_w)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).float()[None]
    src = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    return F.grid_sample(src, grid, mode="bicubic", padding_mode="border", align_corners=False)[0].numpy()


def nearest_rows(mask: np.ndarray, out_h: int, out_w: int, r0: int, r1: int) -> np.ndarray:
    """Rows [r0, r1) of the nearest-neighbour upsampling of a 2-D array to (out_h, out_w)."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(r0, r1) + 0.5) * h / out_h).astype(int), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(int), w - 1)
    return mask[np.ix_(rows, cols)]
