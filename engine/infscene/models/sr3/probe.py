"""SR3's probe run (modelformat/probe.py): the reverse chain a run makes over one patch, shortened to PROBE_STEPS."""
from __future__ import annotations

import torch
from torch import nn

from ...diffusion.schedule import Schedule
from ...modelformat.probe import probe_noise
from ...raster.resample import bicubic_window
from .denoiser import PatchDenoiser
from .network import SR3UNet

PROBE_STEPS = 10  # a run's default is 50: a fifth of its cost, and random weights are as far from a trained model's


@torch.no_grad()
def probe_output(model: nn.Module, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The output of a PROBE_STEPS chain over `lr` (1, C, h, w) as one patch, conditioned as a run conditions it (the
    engine's bicubic) and with the run's default LR-consistency, from the probe's keyed noise."""
    assert isinstance(model, SR3UNet)
    height, width = lr.shape[-2] * scale, lr.shape[-1] * scale
    cond = torch.from_numpy(bicubic_window(lr[0].numpy(), height, width, slice(0, height), slice(0, width)))[None]
    denoiser = PatchDenoiser(model, scale, lr_consistency=True)
    steps = Schedule.paper().respaced(PROBE_STEPS)
    shape = (model.config.channels, height, width)
    return Schedule.run_chain(lambda y, step: denoiser.posterior_mean(y, cond, step), probe_noise(len(steps), shape),
                              steps, lambda step: probe_noise(step.index, shape))
