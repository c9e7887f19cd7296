"""The SR3 family as the engine and the trainer see it (models/family.py): pixel-space patches, K respaced steps
of the paper's schedule, no finishing step."""
from __future__ import annotations

import argparse
from typing import Optional

import torch
from torch import nn

from ...diffusion.canvas import Canvas
from ...diffusion.fusion import FusionMode
from ...diffusion.grid import PatchGrid
from ...diffusion.loop import SamplingJob
from ...diffusion.schedule import Schedule
from ...errors import InfSceneError
from ...training.trainer import TrainOptions
from ...modelformat.contract import ModelContract
from ...sr_options import detail_problem
from ..family import FamilyPlan, Region, SceneRequest, seconds
from ..precision import autocast
from .denoiser import PatchDenoiser
from .network import ModelConfig, SR3UNet
from .training import SR3Objective

DEFAULT_STEPS = 50
# Scene-sized float32 bands alive during the step loop (diffusion/loop.py): vcf/average keep the state and the next
# state (3 bands each); independent keeps the pasted tiles. The condition is computed where it is read.
CANVAS_BANDS = {FusionMode.VCF: 3 + 3, FusionMode.AVERAGE: 3 + 3, FusionMode.INDEPENDENT: 3}


class SR3Family:
    """SR3: the U-Net denoises the output pixels directly; the sampled state is the output."""

    name = "sr3"
    config = ModelConfig
    network = SR3UNet

    def plan(self, config: ModelContract, request: SceneRequest) -> FamilyPlan:
        problem = detail_problem(self.name, False, request.detail)
        if problem is not None:
            raise InfSceneError(problem)
        height, width = request.out_size
        grid = PatchGrid(max(height, request.patch), max(width, request.patch), request.patch, request.overlap,
                         request.key_origin)
        steps = tuple(Schedule.paper().respaced(request.steps or DEFAULT_STEPS))
        return FamilyPlan(grid, steps, 0, 4 * grid.height * grid.width * CANVAS_BANDS[request.mode], config.channels, 1)

    def denoiser(self, model: nn.Module, scale: float, lr_consistency: bool, precision: str) -> PatchDenoiser:
        assert isinstance(model, SR3UNet)
        return PatchDenoiser(model, scale, lr_consistency, precision)

    def finish(self, job: SamplingJob, config: ModelContract, state: Optional[Canvas], lr: object,
               out_size: tuple[int, int], lr_consistency: bool, detail: Optional[float], kept: Optional[Region],
               self_ensemble: bool) -> Canvas:
        assert state is not None and not self_ensemble  # an SR3 plan always has reverse steps, and no ensemble
        return state

    def unit_seconds(self, model: nn.Module, plan: FamilyPlan, scale: float, batch: int, precision: str) -> tuple[float, float]:
        """One U-Net call on patches no larger than the model's own, scaled by the patch area."""
        assert isinstance(model, SR3UNet)
        device = next(model.parameters()).device
        size = min(plan.grid.patch, model.config.patch_size)
        x = torch.zeros((batch, model.config.channels, size, size), device=device)
        level = torch.full((batch,), 0.5, device=device)
        with torch.no_grad(), autocast(device, precision):
            per_patch = seconds(lambda: model(x, x, level, level + 4), device) / batch * (plan.grid.patch / size) ** 2
        return per_patch, 0.0

    def objective(self, options: TrainOptions, config: ModelContract, device: torch.device) -> SR3Objective:
        assert isinstance(config, ModelConfig)
        return SR3Objective(options, config, device)

    def add_train_flags(self, parser: argparse.ArgumentParser) -> None:
        arch = ModelConfig()
        parser.add_argument("--base-channels", type=int, default=arch.base_channels, help="U-Net width (default %(default)s)")
        parser.add_argument("--channel-mults", type=int, nargs="+", default=arch.channel_mults, help="width multiplier per level (default %(default)s)")

    def new_config(self, args: argparse.Namespace) -> ModelConfig:
        return ModelConfig(base_channels=args.base_channels, channel_mults=list(args.channel_mults),
                           scale_min=args.scale_min, scale_max=args.scale_max)
