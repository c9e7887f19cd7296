"""Variance of fused pixels (paper Eq. 6 and 7), with a stand-in model whose mean is known.

Under `vcf` every pixel keeps the step's variance sigma^2; under `average` it shrinks to
sigma^2 * sum(w^2) / (sum w)^2 = sigma^2 (S / W)^2. Fixed seeds, ~220k samples per case, so the
sample variance of the normalised residual is within about 1% of 1; the tolerance is 3%.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infscene.diffusion import loop
from infscene.diffusion.canvas import Canvas, CanvasFactory
from infscene.execution.local import LocalExecutor
from infscene.diffusion.fusion import FusionMode, weight_windows
from infscene.diffusion.grid import PatchGrid
from infscene.progress import ProgressTracker
from infscene.diffusion.schedule import ReverseStep, patch_noise

SIGMA = 0.3
GRID = PatchGrid(height=96, width=96, patch=32, overlap=16)
SEEDS = range(8)


class KnownMean:
    """Stand-in for PatchDenoiser: the posterior mean is the condition itself."""

    state_channels = 3

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        return cond.clone()


def _fused_residuals(mode: FusionMode) -> tuple[np.ndarray, np.ndarray]:
    """Residual (output - known mean) of one reverse step, and the expected std per pixel."""
    mean = Canvas(3, GRID.height, GRID.width)
    mean.data[:] = np.random.default_rng(0).normal(size=mean.shape).astype(np.float32)
    step = ReverseStep(index=0, gamma=0.5, gamma_prev=0.9, posterior_var=SIGMA**2)
    expected = np.zeros((1, GRID.height, GRID.width), np.float32)
    if mode is FusionMode.VCF:
        expected[...] = SIGMA
    else:
        for p, total, root_sq in zip(GRID, *weight_windows(GRID, list(GRID))):
            expected[:, p.slices[0], p.slices[1]] = SIGMA * root_sq / total
    residuals = []
    for seed in SEEDS:
        with LocalExecutor([KnownMean()], CanvasFactory(None)) as executor:
            job = loop.SamplingJob(mean, GRID, executor, [step], seed, 5, ProgressTracker(len(GRID)))
            out = loop.sample_joint(job, mode)
        residuals.append((out.data - mean.data) / expected)
    return np.stack(residuals), np.broadcast_to(expected, mean.shape)


@pytest.mark.parametrize("mode", [FusionMode.VCF, FusionMode.AVERAGE])
def test_fused_variance_matches_theory(mode: FusionMode) -> None:
    normalised, _ = _fused_residuals(mode)
    assert abs(normalised.mean()) < 0.01
    assert normalised.var() == pytest.approx(1.0, abs=0.03)


def test_average_erodes_variance_where_patches_overlap() -> None:
    _, expected = _fused_residuals(FusionMode.AVERAGE)
    coverage = np.zeros((GRID.height, GRID.width), int)
    for p in GRID:
        coverage[p.slices] += 1
    assert np.all(expected[:, coverage == 1] == pytest.approx(SIGMA))
    assert expected[:, coverage >= 2].max() < SIGMA  # sum(w^2) < (sum w)^2 wherever patches meet
    assert expected.min() == pytest.approx(0.5 * SIGMA, rel=0.01)  # four equal weights: 1/sqrt(4)


def test_variance_test_detects_noise_shared_between_overlapping_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    """If overlapping patches shared noise (crops of one scene-wide noise map), vcf variance would exceed sigma^2."""

    def scene_noise_crops(grid: PatchGrid, seed: int, step: int, batch: list, channels: int) -> torch.Tensor:
        scene = patch_noise(seed, step, [0], [0], (channels, GRID.height, GRID.width))[0]
        return torch.stack([scene[:, p.slices[0], p.slices[1]] for p in batch])

    monkeypatch.setattr(loop, "_noise", scene_noise_crops)
    normalised, _ = _fused_residuals(FusionMode.VCF)
    assert normalised.var() > 1.2


def test_initial_state_is_unit_normal_per_pixel() -> None:
    cond = Canvas(3, GRID.height, GRID.width)
    with LocalExecutor([KnownMean()], CanvasFactory(None)) as executor:
        jobs = [loop.SamplingJob(cond, GRID, executor, [], s, 4, ProgressTracker(0)) for s in SEEDS]
        states = [loop.sample_joint(job, FusionMode.VCF).data for job in jobs]
    assert np.var(states) == pytest.approx(1.0, abs=0.03)
