"""One Schedule for sampling and training (issue 21): respacing, noising and the chain loop written once.

The pins below were taken from the loops this object replaced (loop.IndependentChain's own loop, e2diffsr's
reverse_chain, SR3's NoiseLevels) before they were replaced: the same bytes now come out of Schedule. The
denoisers here are elementwise, so the pins hold on any machine with this torch; SR3's preview, which runs a
U-Net, is held against the loop it replaced, written out in the test.
"""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import torch

from infscene.diffusion.grid import Patch, PatchGrid
from infscene.diffusion.loop import IndependentChain
from infscene.diffusion.schedule import ReverseStep, Schedule
from infscene.models.e2diffsr.denoiser import reverse_chain
from infscene.models.e2diffsr.network import E2DiffSRConfig
from infscene.models.sr3.denoiser import PatchDenoiser
from infscene.models.sr3.network import ModelConfig, SR3UNet
from infscene.models.sr3.training import preview_samples
from infscene.training.data import Batch


def _sha(values: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(values.detach().numpy()).tobytes()).hexdigest()[:16]


class _Shrink:
    """An elementwise denoiser: x0 = tanh(y_t / 2 + cond)."""

    state_channels = 2

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        return step.posterior_mean(torch.tanh(0.5 * y_t + cond[:, :2]), y_t)


class _Cond:
    def read_batch(self, patches: list[Patch]) -> np.ndarray:
        return np.stack([np.full((3, p.size, p.size), 0.1 * (p.row + 2 * p.col), np.float32) for p in patches])


def test_a_short_independent_chain_is_pinned() -> None:
    grid = PatchGrid(16, 24, 8, 0, (3, 5))
    chain = IndependentChain(grid, _Cond(), tuple(Schedule.paper().respaced(5)), 11, 2, 1)
    assert _sha(torch.from_numpy(chain(_Shrink(), list(grid)))) == "230e84629fc947db"


def test_e2diffsrs_training_chain_is_pinned() -> None:
    z0 = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    half = SimpleNamespace(denoiser=lambda z_t, level, scale, cond, direct: torch.tanh(z_t) * 0.5 + level[:, None, None, None] * z0)
    noises = [torch.randn(z0.shape, generator=torch.Generator().manual_seed(k)) for k in range(5)]
    steps = Schedule(E2DiffSRConfig().gammas()).respaced(4)
    assert _sha(reverse_chain(half, None, None, torch.full((2,), 4.0), steps, noises)) == "11661398fbcd79bb"


def test_training_levels_and_noising_are_pinned() -> None:
    levels = Schedule.paper().training_level(64, torch.Generator().manual_seed(3))
    assert _sha(levels) == "d80e12d6d2d49779"
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
