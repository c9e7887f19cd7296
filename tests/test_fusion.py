"""SDVC per-patch contributions against the global formulas of the paper (Eq. 5, 7-10)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infscene.diffusion.canvas import Canvas
from infscene.diffusion.fusion import average_contribution, patch_weight, vcf_contribution, weight_windows
from infscene.diffusion.grid import PatchGrid, axis_starts


def _random_patches(grid: PatchGrid, seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(seed)
    patches = list(grid)
    mus = [rng.normal(size=(2, grid.patch, grid.patch)).astype(np.float32) for _ in patches]
    ys = [rng.normal(size=(2, grid.patch, grid.patch)).astype(np.float32) for _ in patches]
    return patches, mus, ys


def _global_formula(grid: PatchGrid, patches: list, mus: list, ys: list, vcf: bool) -> np.ndarray:
    """Eq. 7 (vcf) or Eq. 5, pixel by pixel, from the full list of overlapping patches."""
    w = patch_weight(grid.patch).astype(np.float64)
    sum_w = np.zeros((grid.height, grid.width))
    sum_w2 = np.zeros_like(sum_w)
    sum_wy = np.zeros((2, grid.height, grid.width))
    sum_wmu = np.zeros_like(sum_wy)
    for p, mu, y in zip(patches, mus, ys):
        r, c = p.slices
        sum_w[r, c] += w
        sum_w2[r, c] += w * w
        sum_wy[:, r, c] += w * y
        sum_wmu[:, r, c] += w * mu
    if not vcf:
        return sum_wy / sum_w
    root = np.sqrt(sum_w2)
    return sum_wy / root + (1.0 - sum_w / root) * sum_wmu / sum_w


def _accumulate(grid: PatchGrid, patches: list, mus: list, ys: list, vcf: bool, order: list[int]) -> np.ndarray:
    out = Canvas(2, grid.height, grid.width)
    w = torch.from_numpy(patch_weight(grid.patch))
    for i in order:
        p = patches[i]
        W, S = (torch.from_numpy(a[0]) for a in weight_windows(grid, [p]))
        y, mu = torch.from_numpy(ys[i]), torch.from_numpy(mus[i])
        contrib = vcf_contribution(w, W, S, y, mu) if vcf else average_contribution(w, W, y)
        out.add(p, contrib.numpy())
    return out.data


@pytest.mark.parametrize("vcf", [True, False], ids=["vcf-eq7", "average-eq5"])
def test_sdvc_accumulation_equals_global_formula(vcf: bool) -> None:
    grid = PatchGrid(height=53, width=71, patch=16, overlap=6)
    patches, mus, ys = _random_patches(grid, seed=1)
    expected = _global_formula(grid, patches, mus, ys, vcf)
    forward = _accumulate(grid, patches, mus, ys, vcf, list(range(len(patches))))
    shuffled = _accumulate(grid, patches, mus, ys, vcf, list(np.random.default_rng(2).permutation(len(patches))))
    np.testing.assert_allclose(forward, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shuffled, forward, rtol=1e-5, atol=1e-5)


def test_single_covering_patch_returns_its_sample() -> None:
    grid = PatchGrid(height=40, width=40, patch=16, overlap=4)
    patches, mus, ys = _random_patches(grid, seed=3)
    out = _accumulate(grid, patches, mus, ys, True, list(range(len(patches))))
    # The top-left corner (rows/cols 0..11) is covered only by the first patch, border pixels included.
    np.testing.assert_allclose(out[:, :12, :12], ys[0][:, :12, :12], rtol=1e-6, atol=1e-6)
    one = PatchGrid(height=16, width=16, patch=16, overlap=4)
    p1, m1, y1 = _random_patches(one, seed=4)
    np.testing.assert_allclose(_accumulate(one, p1, m1, y1, True, [0]), y1[0], rtol=1e-6, atol=1e-6)


def test_weight_map_peaks_in_the_centre_decays_linearly_and_stays_positive() -> None:
    w = patch_weight(16)
    assert w.min() > 0
    assert w[7, 7] == w.max() == w[8, 8]
    row = w[7]
    np.testing.assert_allclose(np.diff(row[:8]), np.full(7, row[1] - row[0]), rtol=1e-6)
    np.testing.assert_allclose(w, w.T)


def test_grid_covers_the_canvas_with_the_last_patch_flush() -> None:
    assert axis_starts(100, 32, 8) == [0, 24, 48, 68]
    assert axis_starts(32, 32, 8) == [0]
    grid = PatchGrid(height=70, width=100, patch=32, overlap=8)
    covered = np.zeros((70, 100), int)
    for p in grid:
        covered[p.slices] += 1
    assert covered.min() >= 1
    with pytest.raises(ValueError):
        PatchGrid(10, 10, 8, 8)


def test_weight_windows_are_bitwise_the_whole_canvas_sums() -> None:
    """W and S under each patch, summed from its neighbours alone, equal the scene-wide accumulation (Eq. 8) exactly."""
    grid = PatchGrid(height=300, width=410, patch=64, overlap=16)  # the last row and column are flush, overlapping more
    w = patch_weight(grid.patch)
    total, squares = Canvas(1, grid.height, grid.width), Canvas(1, grid.height, grid.width)
    for p in grid:
        total.add(p, w[None])
        squares.add(p, (w * w)[None])
    root = np.sqrt(squares.data)
    patches = list(grid)
    W, S = weight_windows(grid, patches)
    for i, p in enumerate(patches):
        assert np.array_equal(W[i], total.read(p)) and np.array_equal(S[i], root[:, p.slices[0], p.slices[1]])
