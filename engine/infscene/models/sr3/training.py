"""SR3's training objective: Eq. 2 of the paper on random crops at one scale per batch.

The loss is the L1 distance between the noise and the network's estimate of it, with SR3's continuous
noise level (sqrt(gamma) drawn uniformly between the sqrt(gamma) of two neighbouring timesteps), so the
model is not tied to one discretisation of the schedule and the sampler may use any number of steps.
Validation uses fixed crops, scales, noise and timesteps, so numbers compare across runs; the preview is
bicubic | SR | truth from a short reverse chain.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
from torch import nn

from ...diffusion.schedule import Schedule
from ...training.data import Batch, Degradation, TrainingBatches, fixed_batches, load_hr_images, median_pixel_size
from ...training.images import write_image_rows
from ...training.trainer import TrainOptions
from ...modelformat.folder import load_network
from ..precision import fast_layout
from .denoiser import PatchDenoiser
from .network import ModelConfig, SR3UNet

VAL_SCALES = (2.0, 3.7, 5.0, 8.0)
PREVIEW_SCALE = 4.0
PREVIEW_IMAGES = 3


def diffusion_loss(model: SR3UNet, batch: Batch, sqrt_gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean |eps - f(x, sqrt(gamma) y0 + sqrt(1 - gamma) eps, sqrt(gamma))|."""
    device = next(model.parameters()).device
    hr, cond, scale = batch.hr.to(device), batch.cond.to(device), batch.scale.to(device)
    sqrt_gamma, noise = sqrt_gamma.to(device), noise.to(device)
    noisy = Schedule.q_sample(hr, sqrt_gamma, noise)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        predicted = model(cond, noisy, sqrt_gamma, scale)
    return torch.mean(torch.abs(predicted.float() - noise))


class Validation:
    """Validation loss on fixed crops, scales, timesteps and noise, so numbers compare across runs."""

    def __init__(self, batches: list[Batch], seed: int) -> None:
        self.batches = batches
        generator = torch.Generator().manual_seed(seed)
        schedule = Schedule.paper()
        self.draws = [(schedule.training_level(b.hr.shape[0], generator), torch.randn(b.hr.shape, generator=generator)) for b in batches]

    @torch.no_grad()
    def loss(self, model: SR3UNet) -> float:
        was_training = model.training
        model.eval()
        total = sum(
            diffusion_loss(model, batch, sqrt_gamma, noise).item() * batch.hr.shape[0]
            for batch, (sqrt_gamma, noise) in zip(self.batches, self.draws)
        )
        model.train(was_training)
        return total / sum(batch.hr.shape[0] for batch in self.batches)


@torch.no_grad()
def preview_samples(model: SR3UNet, batch: Batch, steps: int, seed: int) -> torch.Tensor:
    """Super-resolve a batch with a short respaced reverse chain (LR-consistent, as the product runs)."""
    device = next(model.parameters()).device
    denoiser = PatchDenoiser(model, float(batch.scale[0]), lr_consistency=True)
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(batch.hr.shape, generator=generator)
    y = Schedule.run_chain(lambda y_t, step: denoiser.posterior_mean(y_t.to(device), batch.cond, step), y,
                           Schedule.paper().respaced(steps),
                           lambda step: torch.randn(batch.hr.shape, generator=generator) if step.index > 0 else None)
    return y.clamp(-1.0, 1.0)


def write_preview(path: Path, batch: Batch, sr: torch.Tensor) -> None:
    """One row per sample: bicubic-upsampled LR | SR | truth."""
    write_image_rows(path, [batch.cond, sr, batch.hr])


class SR3Objective:
    """Eq. 2 of the InfScene paper on random crops at one scale per batch."""

    description = "SR3"

    def __init__(self, options: TrainOptions, config: ModelConfig, device: torch.device) -> None:
        images = load_hr_images(options.hr, config, options.crop)
        config.train_pixel_size_m = median_pixel_size(images)
        self.batches = TrainingBatches(images, config, options.crop, options.batch, Degradation(options.blur_sigma, options.noise_std))
        self.schedule = Schedule.paper()
        self.preview_steps, self.seed = options.preview_steps, options.seed
        self.model = SR3UNet(config)
        if options.init:
            self.model.load_state_dict(load_network(ModelConfig, SR3UNet, options.init).state_dict())
        self.model = fast_layout(self.model.to(device), device).train()
        self.validation: Optional[Validation] = None
        self.preview_batch: Optional[Batch] = None
        if options.val:
            val_images = load_hr_images(options.val, config, options.crop)
            self.validation = Validation(fixed_batches(val_images, config, options.crop, VAL_SCALES), options.seed)
            self.preview_batch = fixed_batches(val_images[:PREVIEW_IMAGES], config, options.crop, [PREVIEW_SCALE])[0]

    def parameters(self) -> Iterable[nn.Parameter]:
        return self.model.parameters()

    def loss(self, model: nn.Module, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        batch = self.batches.draw(rng, generator)
        noise = torch.randn(batch.hr.shape, generator=generator)
        return diffusion_loss(model, batch, self.schedule.training_level(batch.hr.shape[0], generator), noise)

    def validate(self, model: nn.Module) -> Optional[float]:
        return None if self.validation is None else self.validation.loss(model)

    def preview(self, model: nn.Module, path: Path) -> None:
        if self.preview_batch is not None:
            write_preview(path, self.preview_batch, preview_samples(model, self.preview_batch, self.preview_steps, self.seed))
