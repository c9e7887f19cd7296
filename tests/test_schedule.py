"""One Schedule for sampling and training (issue 21): respacing, noising and the chain loop written once.

Each chain is held against the loop that Schedule replaced, written out here, on the same inputs: equal bits on
any machine. (These tests once pinned sha256 digests of the outputs instead; the digests depend on the CPU's
vectorised tanh and Box-Muller kernels, so a fresh machine of this project's kind failed them: issue 33.)
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from infscene.diffusion.grid import Patch, PatchGrid
from infscene.diffusion.loop import IndependentChain
from infscene.diffusion.schedule import ReverseStep, Schedule, linear_gammas, patch_noise
from infscene.models.e2diffsr.denoiser import reverse_chain
from infscene.models.e2diffsr.network import E2DiffSRConfig
from infscene.models.sr3.denoiser import PatchDenoiser
from infscene.models.sr3.network import ModelConfig, SR3UNet
from infscene.models.sr3.training import preview_samples
from infscene.training.data import Batch


class _Shrink:
    """An elementwise denoiser: x0 = tanh(y_t / 2 + cond)."""

    state_channels = 2

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        return step.posterior_mean(torch.tanh(0.5 * y_t + cond[:, :2]), y_t)


class _Cond:
    def read_batch(self, patches: list[Patch]) -> np.ndarray:
        return np.stack([np.full((3, p.size, p.size), 0.1 * (p.row + 2 * p.col), np.float32) for p in patches])


def test_a_short_independent_chain_is_the_loop_it_replaced() -> None:
    grid = PatchGrid(16, 24, 8, 0, (3, 5))
    patches, steps = list(grid), tuple(Schedule.paper().respaced(5))
    chain = IndependentChain(grid, _Cond(), steps, 11, 2, 1)
    cond = torch.from_numpy(_Cond().read_batch(patches))

    def noise(step: int) -> torch.Tensor:
        return patch_noise(11, step, *grid.noise_keys(patches), (2, 8, 8))

    y = noise(len(steps))
    for step in steps:
        y = _Shrink().posterior_mean(y, cond, step) + step.sigma * noise(step.index)
    assert torch.equal(torch.from_numpy(chain(_Shrink(), patches)), y)


def test_e2diffsrs_training_chain_is_the_loop_it_replaced() -> None:
    z0 = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    half = SimpleNamespace(denoiser=lambda z_t, level, scale, cond, direct: torch.tanh(z_t) * 0.5 + level[:, None, None, None] * z0)
    noises = [torch.randn(z0.shape, generator=torch.Generator().manual_seed(k)) for k in range(5)]
    steps = Schedule(E2DiffSRConfig().gammas()).respaced(4)
    z = noises[0]
    for step, noise in zip(steps, noises[1:]):
        level = torch.full((2,), float(np.sqrt(step.gamma)))
        z = step.coef_x0 * half.denoiser(z, level, None, None, None) + step.coef_xt * z + step.sigma * noise
    assert torch.equal(reverse_chain(half, None, None, torch.full((2,), 4.0), steps, noises), z)


def test_training_levels_and_noising_are_the_code_they_replaced() -> None:
    sqrt_gammas = torch.from_numpy(np.sqrt(np.concatenate([[1.0], linear_gammas()]))).float()
    generator = torch.Generator().manual_seed(3)
    t = torch.randint(1, len(sqrt_gammas), (64,), generator=generator)
    low, high = sqrt_gammas[t], sqrt_gammas[t - 1]
    levels = Schedule.paper().training_level(64, torch.Generator().manual_seed(3))
    assert torch.equal(levels, low + (high - low) * torch.rand(64, generator=generator))
    assert bool(((levels <= high) & (levels >= low)).all())
    x0, noise = torch.randn(64, 3, 4, 4), torch.randn(64, 3, 4, 4)
    sg = levels[:, None, None, None]  # the expression the SR3 loss wrote inline
    assert torch.equal(Schedule.q_sample(x0, levels, noise), sg * x0 + torch.sqrt(1.0 - sg**2) * noise)


def test_sr3s_preview_chain_is_the_loop_it_replaced() -> None:
    torch.manual_seed(0)
    model = SR3UNet(ModelConfig(base_channels=8, channel_mults=[1, 2])).eval()
    cond = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    batch = Batch(hr=torch.zeros(2, 3, 16, 16), cond=cond, scale=torch.full((2,), 4.0))
    denoiser = PatchDenoiser(model, 4.0, lr_consistency=True)
    generator = torch.Generator().manual_seed(5)
    y = torch.randn(batch.hr.shape, generator=generator)
    for step in Schedule.paper().respaced(6):
        mean = denoiser.posterior_mean(y, batch.cond, step)
        y = mean + step.sigma * torch.randn(mean.shape, generator=generator) if step.index > 0 else mean
    assert torch.equal(preview_samples(model, batch, 6, 5), y.clamp(-1.0, 1.0))
