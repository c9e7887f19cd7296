"""The step loop: joint denoising of all patches of a canvas, fused at every reverse step.

`vcf` and `average` run step-major: at each step every patch reads its window of the current
state, the model gives its posterior mean, and its fusion contribution is added to the next
state. Memory on a device is one batch of patches; scene-sized maps live in canvases.
`independent` runs patch-major on non-overlapping tiles (the seamful SR3 baseline): each tile
runs its whole chain alone and is pasted. The model work goes to a DenoiserPool (one or more
devices); contributions are added here, in grid order, whatever the number of devices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .canvas import Canvas
from .fusion import FusionMode, average_contribution, patch_weight, vcf_contribution
from .grid import Patch, PatchGrid
from .progress import ProgressTracker
from .sampler import Denoiser, ReverseStep, patch_noise
from .workers import DenoiserPool

CanvasMaker = Callable[[int, int, int], Canvas]


def _noise(seed: int, step: int, batch: list[Patch], channels: int) -> torch.Tensor:
    size = batch[0].size
    return patch_noise(seed, step, [p.row for p in batch], [p.col for p in batch], (channels, size, size))


@dataclass(frozen=True)
class SamplingJob:
    """What every mode needs: the condition, the grid, the devices, the steps, the noise key and the bookkeeping."""

    cond: Canvas
    grid: PatchGrid
    pool: DenoiserPool
    steps: list[ReverseStep]
    seed: int
    batch_size: int
    make_canvas: CanvasMaker
    tracker: ProgressTracker
    cond_factor: int = 1  # condition pixels per state pixel: 1 for SR3, 8 for e2diffsr's latent grid

    def read_cond(self, batch: list[Patch]) -> torch.Tensor:
        """The condition under each patch of the batch (the patch scaled to the condition's grid)."""
        f = self.cond_factor
        return torch.from_numpy(self.cond.read_batch([Patch(p.row, p.col, p.y0 * f, p.x0 * f, p.size * f) for p in batch]))

    @property
    def channels(self) -> int:
        """Channels of the state being denoised (3 for SR3's pixels, 4 for e2diffsr's latent)."""
        return self.pool.state_channels


def weight_maps(grid: PatchGrid, make_canvas: CanvasMaker) -> tuple[Canvas, Canvas]:
    """W = sum of patch weights and S = sqrt(sum of squared weights) over the canvas (Eq. 8)."""
    w = patch_weight(grid.patch)[None]
    total, root_sq = make_canvas(1, grid.height, grid.width), make_canvas(1, grid.height, grid.width)
    for patch in grid:
        total.add(patch, w)
        root_sq.add(patch, w * w)
    np.sqrt(root_sq.data, out=root_sq.data)
    return total, root_sq


def sample_joint(job: SamplingJob, mode: FusionMode) -> Canvas:
    """Run the K-step reverse chain over the whole canvas with `vcf` or `average` fusion."""
    grid, channels, seed = job.grid, job.channels, job.seed
    w = torch.from_numpy(patch_weight(grid.patch))
    total, root_sq = weight_maps(grid, job.make_canvas)
    shape = (channels, grid.height, grid.width)
    state, nxt = job.make_canvas(*shape), job.make_canvas(*shape)

    # Initial state: the variance-corrected fusion of independent unit noises, N(0, 1) per pixel.
    for batch in grid.batches(job.batch_size):
        contrib = (w / torch.from_numpy(root_sq.read_batch(batch))) * _noise(seed, len(job.steps), batch, channels)
        for patch, values in zip(batch, contrib.numpy()):
            state.add(patch, values)

    for step in job.steps:
        nxt.clear()

        def posterior_mean(denoiser: Denoiser, batch: list[Patch]) -> torch.Tensor:
            y_t = torch.from_numpy(state.read_batch(batch))
            return denoiser.posterior_mean(y_t, job.read_cond(batch), step)

        means = job.pool.map(posterior_mean, grid.batches(job.batch_size))
        for batch, mu in zip(grid.batches(job.batch_size), means):
            job.tracker.check_cancel()
            y = mu + step.sigma * _noise(seed, step.index, batch, channels)
            W = torch.from_numpy(total.read_batch(batch))
            if mode is FusionMode.VCF:
                contrib = vcf_contribution(w, W, torch.from_numpy(root_sq.read_batch(batch)), y, mu)
            else:
                contrib = average_contribution(w, W, y)
            for patch, values in zip(batch, contrib.numpy()):
                nxt.add(patch, values)
            job.tracker.advance(len(batch))
        state, nxt = nxt, state
    return state


def sample_independent(job: SamplingJob) -> Canvas:
    """Sample each tile's chain on its own and paste the results (no fusion at all)."""
    out = job.make_canvas(job.channels, job.grid.height, job.grid.width)

    def chain(denoiser: Denoiser, batch: list[Patch]) -> torch.Tensor:
        cond = job.read_cond(batch)
        y = _noise(job.seed, len(job.steps), batch, job.channels)
        for step in job.steps:
            job.tracker.check_cancel()
            y = denoiser.posterior_mean(y, cond, step) + step.sigma * _noise(job.seed, step.index, batch, job.channels)
            job.tracker.advance(len(batch))
        return y

    samples = job.pool.map(chain, job.grid.batches(job.batch_size))
    for batch, y in zip(job.grid.batches(job.batch_size), samples):
        for patch, values in zip(batch, y.numpy()):
            out.paste(patch, values)
    return out


def sample_canvas(job: SamplingJob, mode: FusionMode) -> Canvas:
    """Super-resolve the whole canvas in the chosen fusion mode; returns the y_0 canvas."""
    if mode is FusionMode.INDEPENDENT:
        return sample_independent(job)
    return sample_joint(job, mode)
