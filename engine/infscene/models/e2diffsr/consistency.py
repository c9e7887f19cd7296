"""LR-consistency: every low-resolution pixel's block of output pixels keeps the input's mean, without a grid.

Which block an output pixel belongs to is `owner`: the LR pixel its centre falls in (as the engine's nearest_source).
The exact block-mean projection (`project_block_means`: each block moved by its mean residual) makes the output
consistent with its input to the last digit, but the move is a step at every block border: at the default detail the
steps across the LR pixel borders were 18% above those elsewhere, beyond the truth's (issue 38), a faint grid at the
input's pitch; bicubic followed by it, +89%.

`smooth_projection` spreads the same residuals smoothly. The correction is the bilinear interpolation U a of one
coefficient per LR pixel, chosen so that its block means are the residuals r: D U a = r (D: block means). Per axis
T = D U is tridiagonal and diagonally dominant (its diagonal is 3/4 at 2x, 4x or 8x and never under 1/2), so
a = T_rows^-1 r T_cols^-T exists, and T's inverse falls by about 0.17 a pixel: solved on a span of SPAN_MARGIN_LR
pixels around a tile's core (the scene's edges are the span's where they are nearer), the core's coefficients are the
whole scene's to about 0.17^6 = 3e-5 of the residual. What that leaves, and float rounding, the exact projection
then removes: block means exact to the last digit, its steps about 3e-5 of what they were.

What it cannot remove: a residual that alternates from block to block (a drawing's block means are such noise) has
exact means only with a correction that alternates too, and its steps gather at the block borders. From about 3x a
block has room for the turn and the grid is a tenth of the block-constant one's (tests/test_lr_consistency.py); at 2x
a block is two pixels, the least-steps correction of that pattern is the block-constant one itself, and a third is
gained. The tiles decode SPAN_MARGIN_LR more LR pixels a side for it (about 5% more decode at 4x).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

SPAN_MARGIN_LR = 6  # LR pixels beyond a tile's core whose residuals its correction reads


def owner(lr_len: int, out_len: int, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
    """For each output pixel (of start:stop), the low-resolution pixel its centre falls in (exact integer arithmetic)."""
    return ((2 * np.arange(start, out_len if stop is None else stop) + 1) * lr_len) // (2 * out_len)


def first_owned(lr_len: int, out_len: int, lr_index: int) -> int:
    """The first output pixel whose owner is lr_index or later (out_len where there is none): the smallest i with
    (2i + 1) lr_len >= 2 out_len lr_index, computed, not searched, so planning does not grow with the raster."""
    return min(out_len, max(0, -((lr_len - 2 * out_len * lr_index) // (2 * lr_len))))


def owned_span(lr_len: int, out_len: int, lr_span: tuple[int, int]) -> tuple[int, int]:
    """The output pixels (start, stop) whose owners are the LR pixels lr_span."""
    return first_owned(lr_len, out_len, lr_span[0]), first_owned(lr_len, out_len, lr_span[1])


def project_block_means(output: torch.Tensor, lr_core: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """output (..., C, H, W) + the mean residual of each LR block, so that every block's mean equals lr_core (..., C, h, w).

    rows/cols: the core-relative LR pixel each output row/column belongs to. Computed in float32 even under
    bf16 autocast: the projection is what makes the output consistent with its input, to the last digit.
    """
    with torch.autocast(output.device.type, enabled=False):
        output, lr_core = output.float(), lr_core.float()
        r, c = torch.from_numpy(rows).to(output.device), torch.from_numpy(cols).to(output.device)
        h, w = lr_core.shape[-2:]
        one_r = torch.zeros(h, len(rows), dtype=output.dtype, device=output.device)
        one_r[r, torch.arange(len(rows), device=output.device)] = 1.0
        one_c = torch.zeros(w, len(cols), dtype=output.dtype, device=output.device)
        one_c[c, torch.arange(len(cols), device=output.device)] = 1.0
        counts = one_r.sum(1)[:, None] * one_c.sum(1)[None, :]
        means = torch.einsum("hi,...ij,wj->...hw", one_r, output, one_c) / counts
        residual = lr_core - means
        return output + residual[..., r, :][..., c]


@dataclass(frozen=True)
class AxisProjection:
    """One axis of the smooth projection of a tile, on a scene axis of lr_len LR -> out_len output pixels: LR pixels
    `span` (the core and its margin), their output pixels `span_out`, the core's `core` and `core_out`; `means`
    (span x span_out) takes block means, `spread` (core_out x span) turns the span's residuals into the core's
    correction (U_core T^-1)."""

    lr_len: int
    out_len: int
    span: tuple[int, int]
    span_out: tuple[int, int]
    core: tuple[int, int]
    core_out: tuple[int, int]
    means: np.ndarray
    spread: np.ndarray

    def owners(self) -> np.ndarray:
        """Each core output pixel's LR pixel, relative to the core (for the exact projection after the smooth one)."""
        return owner(self.lr_len, self.out_len, *self.core_out) - self.core[0]


def axis_projection(lr_len: int, out_len: int, core: tuple[int, int], span: tuple[int, int]) -> AxisProjection:
    """The smooth projection's matrices along one axis for the LR pixels `core` of a scene axis of lr_len -> out_len,
    read with the residuals of `span` (the core and SPAN_MARGIN_LR pixels around it, within the scene)."""
    span_out, core_out = owned_span(lr_len, out_len, span), owned_span(lr_len, out_len, core)
    interpolation = bilinear_weights(lr_len, out_len, span_out, span)
    blocks = owner(lr_len, out_len, *span_out) - span[0]
    means = np.zeros((span[1] - span[0], span_out[1] - span_out[0]))
    means[blocks, np.arange(len(blocks))] = 1.0
    means /= means.sum(axis=1, keepdims=True)
    coupling = means @ interpolation  # T = D U
    core_rows = interpolation[core_out[0] - span_out[0]: core_out[1] - span_out[0]]
    spread = np.linalg.solve(coupling.T, core_rows.T).T  # U_core T^-1
    return AxisProjection(lr_len, out_len, span, span_out, core, core_out, means, spread)


def bilinear_weights(lr_len: int, out_len: int, out_span: tuple[int, int], span: tuple[int, int]) -> np.ndarray:
    """U (out pixels x span LR pixels): each output pixel's bilinear weights on the LR pixel centres of `span`, the
    nearest centre's value held beyond the span's first and last (as beyond the scene's)."""
    position = (np.arange(*out_span, dtype=np.float64) + 0.5) * lr_len / out_len - 0.5  # in LR pixels, centre k at k
    position = np.clip(position, span[0], span[1] - 1) - span[0]
    left = np.minimum(np.floor(position).astype(int), span[1] - span[0] - 1)
    right = np.minimum(left + 1, span[1] - span[0] - 1)
    weight = position - left
    interpolation = np.zeros((out_span[1] - out_span[0], span[1] - span[0]))
    rows = np.arange(len(position))
    np.add.at(interpolation, (rows, left), 1.0 - weight)
    np.add.at(interpolation, (rows, right), weight)
    return interpolation


def smooth_projection(output: torch.Tensor, lr: torch.Tensor, rows: AxisProjection, cols: AxisProjection) -> torch.Tensor:
    """The core's output (C, core_out rows, core_out cols), every block's mean equal to the input's, without steps.

    output (C, H, W): output pixels from rows.span_out[0] / cols.span_out[0] on, covering both spans' output pixels;
    lr (C, h, w): LR pixels from rows.span[0] / cols.span[0] on, covering both spans. Float32 even under autocast.
    """
    with torch.autocast(output.device.type, enabled=False):
        output, lr = output.float(), lr.float()
        span_rows, span_cols = rows.span_out[1] - rows.span_out[0], cols.span_out[1] - cols.span_out[0]
        block_rows, block_cols = rows.span[1] - rows.span[0], cols.span[1] - cols.span[0]
        means = _matrix(rows.means, output) @ output[:, :span_rows, :span_cols] @ _matrix(cols.means, output).T
        residual = lr[:, :block_rows, :block_cols] - means
        correction = _matrix(rows.spread, output) @ residual @ _matrix(cols.spread, output).T
        core_rows = slice(rows.core_out[0] - rows.span_out[0], rows.core_out[1] - rows.span_out[0])
        core_cols = slice(cols.core_out[0] - cols.span_out[0], cols.core_out[1] - cols.span_out[0])
        corrected = output[:, core_rows, core_cols] + correction
        lr_core = lr[:, rows.core[0] - rows.span[0]: rows.core[1] - rows.span[0],
                     cols.core[0] - cols.span[0]: cols.core[1] - cols.span[0]]
        return project_block_means(corrected, lr_core, rows.owners(), cols.owners())


def _matrix(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(values).to(device=like.device, dtype=like.dtype)
