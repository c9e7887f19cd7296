"""SR3's reverse step for the step loop: the U-Net's noise estimate turned into the step's posterior mean."""
from __future__ import annotations

import torch

from ...diffusion.schedule import ReverseStep
from ...raster.metrics import low_frequencies
from ..precision import FP32, autocast
from .network import SR3UNet


class PatchDenoiser:
    """SR3's Denoiser: runs the U-Net on a batch of patches and returns the posterior mean of the reverse step.

    With `lr_consistency`, the low frequencies of each step's x0 estimate are replaced by those
    of the conditioning image (x0 - L(x0) + L(cond)), which stops the colour and brightness
    drift of SR3 outputs away from the measured input. It acts inside each patch's mean, so the
    variance-corrected fusion of the means stays exact.
    """

    def __init__(self, model: SR3UNet, scale: float, lr_consistency: bool = True, precision: str = FP32) -> None:
        self.model = model
        self.scale = scale
        self.lr_consistency = lr_consistency
        self.precision = precision
        self.device = next(model.parameters()).device
        self.state_channels = model.config.channels

    @torch.no_grad()
    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        y_t, cond = y_t.to(self.device), cond.to(self.device)
        batch = y_t.shape[0]
        sqrt_gamma = step.level(batch, self.device)
        scale = torch.full((batch,), float(self.scale), device=self.device)
        with autocast(self.device, self.precision):
            eps = self.model(cond, y_t, sqrt_gamma, scale).float()
        x0 = step.x0_from_eps(y_t, eps).clamp(-1.0, 1.0)
        if self.lr_consistency:
            x0 = x0 - low_frequencies(x0, self.scale) + low_frequencies(cond, self.scale)
        return step.posterior_mean(x0, y_t).cpu()
