"""The latent reverse step of the e2diffsr family, one definition for training and for the engine.

Training runs the whole T-step chain with gradients (Algorithm 1); the engine's step loop runs one
step at a time on batches of overlapping latent patches and fuses their (mu, sigma * noise) with
VCF, exactly as it does for SR3's pixel patches. The denoiser estimates z0; the step's posterior
mean is then the respaced DDPM posterior of diffusion.schedule.ReverseStep, with sigma_t^2 its posterior variance.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...diffusion.schedule import ReverseStep, Schedule
from ..precision import FP32, autocast
from .network import E2DiffSR, fold_condition


def latent_posterior_mean(model: E2DiffSR, z_t: torch.Tensor, cond: torch.Tensor, direct: torch.Tensor,
                          scale: torch.Tensor, step: ReverseStep) -> torch.Tensor:
    """mu of q(z_{t-1} | z_t, z0 = the denoiser's estimate), in diffusion units (z / latent_scale).

    The estimate is taken to float32 before the mean is formed, so under bf16 autocast only the network runs in bf16.
    """
    sqrt_gamma = step.level(z_t.shape[0], z_t.device)
    z0 = model.denoiser(z_t, sqrt_gamma, scale, cond, direct).float()
    return step.posterior_mean(z0, z_t)


def reverse_chain(model: E2DiffSR, cond: torch.Tensor, direct: torch.Tensor, scale: torch.Tensor,
                  steps: Sequence[ReverseStep], noises: Sequence[torch.Tensor]) -> torch.Tensor:
    """z0 from z_T = noises[0], adding sigma * noises[k + 1] after step k (the last step's sigma is 0)."""
    later = iter(noises[1:])
    return Schedule.run_chain(lambda z_t, step: latent_posterior_mean(model, z_t, cond, direct, scale, step), noises[0],
                              steps, lambda step: next(later))


class LatentPatchDenoiser:
    """The step loop's denoiser for e2diffsr: latent patches and the condition under them -> posterior mean.

    cond is the bicubic LR on the output grid under each latent patch (8 times its side), folded here
    onto the latent grid. CondNet is rerun at each step on the patch's folded condition: it costs less than keeping a
    scene-sized map of its features, and a patch's features then depend only on the patch.
    """

    def __init__(self, model: E2DiffSR, scale: float, precision: str = FP32) -> None:
        self.model = model
        self.scale = scale
        self.precision = precision
        self.device = next(model.parameters()).device
        self.state_channels = model.config.latent_channels

    @torch.no_grad()
    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        y_t, cond = y_t.to(self.device), cond.to(self.device)
        scale = torch.full((y_t.shape[0],), float(self.scale), device=self.device)
        with autocast(self.device, self.precision):
            features, direct = self.model.condition(fold_condition(cond))
            return latent_posterior_mean(self.model, y_t, features, direct, scale, step).cpu()
