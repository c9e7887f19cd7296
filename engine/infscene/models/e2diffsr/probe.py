"""e2diffsr's probe run (modelformat/probe.py): the whole latent chain, then the decode at detail 1 and the exact
projection, over the probe image as one tile."""
from __future__ import annotations

import torch
from torch import nn

from ...diffusion.schedule import Schedule
from ...modelformat.probe import probe_noise
from .decode import owner, project_block_means
from .denoiser import reverse_chain
from .network import LATENT_FACTOR, E2DiffSR, Sampling, bicubic_base, fold_condition

PROBE_DETAIL = 1.0  # every part of the model at work (the latent and the texture head), whatever its default_detail


@torch.no_grad()
def probe_output(model: nn.Module, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The output for `lr` (1, C, h, w): the latent sampled by the model's T-step chain from the probe's keyed noise,
    decoded at PROBE_DETAIL (texture head included), each LR block's mean then set to its input pixel as a run does."""
    assert isinstance(model, E2DiffSR)
    config = model.config
    (h, w), (height, width) = lr.shape[-2:], (lr.shape[-2] * scale, lr.shape[-1] * scale)
    where = Sampling.whole((h, w), (height, width))
    scales = torch.full((1,), float(scale))
    cond, direct = model.condition(fold_condition(bicubic_base(lr, where)))
    steps = Schedule(config.gammas()).respaced(config.diffusion_steps)
    shape = (config.latent_channels, height // LATENT_FACTOR, width // LATENT_FACTOR)
    noises = [probe_noise(len(steps), shape)] + [probe_noise(step.index, shape) for step in steps]
    z0 = config.latent_share(PROBE_DETAIL) * reverse_chain(model, cond, direct, scales, steps, noises)
    output = model.decode(lr, z0 * config.latent_scale, where, scales)
    if model.texture is not None:
        output = output + PROBE_DETAIL * model.texture(output, z0, scales)
    return project_block_means(output, lr, owner(h, height), owner(w, width))
