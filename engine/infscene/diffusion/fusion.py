"""Fusing overlapping patch states into one canvas at every reverse step.

Each patch i has a weight map w_i (peak at its centre, linear decay toward its edges, strictly
positive). With the global maps W = sum_j w_j and S = sqrt(sum_j w_j^2) (Eq. 8), a patch
contributes to the next canvas state

- `vcf` (Eq. 10, SDVC): C_i = (w_i / S) y_i + ((S - W) / (S W)) w_i mu_i, whose sum over patches
  is the variance-corrected fusion of Eq. 7: the fused pixel keeps the variance sigma_t^2;
- `average` (Eq. 5): C_i = (w_i / W) y_i, the naive weighted mean, whose variance shrinks to
  sigma_t^2 sum(w^2) / (sum w)^2 (variance erosion).

Contributions depend only on the patch and the precomputed W and S, so patches can be processed
in any order, on any number of workers, and merged by summation. Where one patch alone covers a
pixel, W = S = w and both contributions reduce to that patch's sample y_i.
"""
from __future__ import annotations

from enum import Enum

import numpy as np
import torch

from .grid import Patch, PatchGrid


class FusionMode(str, Enum):
    VCF = "vcf"
    AVERAGE = "average"
    INDEPENDENT = "independent"


def patch_weight(size: int) -> np.ndarray:
    """The 2-D weight map of a square patch: product of 1-D triangles, positive at the edges."""
    centre_distance = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5)
    tri = centre_distance / (size / 2.0)
    return np.outer(tri, tri).astype(np.float32)


def weight_windows(grid: PatchGrid, batch: list[Patch]) -> tuple[np.ndarray, np.ndarray]:
    """W and S (Eq. 8) under each patch of the batch, each (B, 1, p, p).

    Each window sums the weights of the patches that overlap it, in grid order, so it is bitwise
    what accumulating every patch over a whole canvas gives, without any scene-sized map.
    """
    w = patch_weight(grid.patch)
    totals = np.zeros((len(batch), 1, grid.patch, grid.patch), np.float32)
    squares = np.zeros_like(totals)
    for i, patch in enumerate(batch):
        rows, cols = patch.slices
        for other in grid.overlapping(rows, cols):
            (r0, r1), (c0, c1) = _intersection(patch, other)
            piece = w[r0 - other.y0 : r1 - other.y0, c0 - other.x0 : c1 - other.x0]
            totals[i, 0, r0 - patch.y0 : r1 - patch.y0, c0 - patch.x0 : c1 - patch.x0] += piece
            squares[i, 0, r0 - patch.y0 : r1 - patch.y0, c0 - patch.x0 : c1 - patch.x0] += piece * piece
    return totals, np.sqrt(squares)


def _intersection(a: Patch, b: Patch) -> tuple[tuple[int, int], tuple[int, int]]:
    return (max(a.y0, b.y0), min(a.y0 + a.size, b.y0 + b.size)), (max(a.x0, b.x0), min(a.x0 + a.size, b.x0 + b.size))


def vcf_contribution(w: torch.Tensor, W: torch.Tensor, S: torch.Tensor, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Eq. 10: this patch's share of the variance-corrected canvas."""
    return (w / S) * y + ((S - W) / (S * W)) * w * mu


def average_contribution(w: torch.Tensor, W: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 5 split per patch: this patch's share of the weighted mean."""
    return (w / W) * y
