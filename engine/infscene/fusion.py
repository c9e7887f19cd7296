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


class FusionMode(str, Enum):
    VCF = "vcf"
    AVERAGE = "average"
    INDEPENDENT = "independent"


def patch_weight(size: int) -> np.ndarray:
    """The 2-D weight map of a square patch: product of 1-D triangles, positive at the edges."""
    centre_distance = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5)
    tri = centre_distance / (size / 2.0)
    return np.outer(tri, tri).astype(np.float32)


def vcf_contribution(w: torch.Tensor, W: torch.Tensor, S: torch.Tensor, y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Eq. 10: this patch's share of the variance-corrected canvas."""
    return (w / S) * y + ((S - W) / (S * W)) * w * mu


def average_contribution(w: torch.Tensor, W: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 5 split per patch: this patch's share of the weighted mean."""
    return (w / W) * y
