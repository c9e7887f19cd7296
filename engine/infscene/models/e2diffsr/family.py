"""The e2diffsr family as the engine and the trainer see it (models/family.py): latent patches on a grid 1/8 of
the output, its own T-step schedule, and the tiled decode as the finishing step."""
from __future__ import annotations

import argparse
from typing import Optional

import torch
from torch import nn

from ...diffusion.canvas import Canvas
from ...diffusion.fusion import FusionMode
from ...diffusion.loop import SamplingJob
from ...diffusion.schedule import Schedule
from ...errors import InfSceneError
from ...training.trainer import Objective, TrainOptions
from ...modelformat.contract import ModelContract
from ...sr_options import detail_problem
from ..family import FamilyPlan, Region, SceneRequest, seconds
from ..precision import autocast
from .denoiser import LatentPatchDenoiser
from .network import LATENT_FACTOR, E2DiffSR, E2DiffSRConfig
from .decode import SceneGeometry
from .ensemble import decode_ensemble, ensemble_canvas_bytes, ensemble_tile_count
from .run import decode_scene, decode_tile_count, latent_grid, typical_tile
from .texture import CRITIC_INPUTS
from .training import LATENT_LOSSES, TRAIN_DETAILS, stage_objective

# e2diffsr keeps the result on the output grid (3 bands) and, on the latent grid, the state and the next
# state (4 bands each) in vcf/average, the pasted tiles in independent.
LATENT_CANVAS_BANDS = {FusionMode.VCF: 4 + 4, FusionMode.AVERAGE: 4 + 4, FusionMode.INDEPENDENT: 4}


def resolve_detail(requested: Optional[float], config: E2DiffSRConfig) -> float:
    """--detail, or the model's default; a model without a texture head offers only its two ends: 0 (the
    regression branch alone) and 1 (the sampled latent decoded)."""
    detail = config.default_detail if requested is None else requested
    if not 0.0 <= detail <= 1.0:
        raise InfSceneError(f"{config.name}'s default_detail must be from 0 to 1, got {detail:g}: fix its config.json")
    problem = detail_problem(config.family, bool(config.texture_channels), detail)
    if problem is not None:
        raise InfSceneError(problem)
    return detail


def check_self_ensemble(detail: float, requested: Optional[float]) -> None:
    """--self-ensemble averages the regression branch's decodes: a run that samples and draws texture (detail above
    0) is refused, its detail named (the model's default where --detail was not given)."""
    if detail:
        given = f"--detail {detail:g}" if requested is not None else f"this model's default detail, {detail:g}"
        raise InfSceneError(f"--self-ensemble averages the regression branch alone: it needs --detail 0, not {given}")


class E2DiffSRFamily:
    """e2diffsr: the latent is sampled by the step loop, then decoded tile by tile with the regression branch."""

    name = "e2diffsr"
    config = E2DiffSRConfig
    network = E2DiffSR

    def plan(self, config: ModelContract, request: SceneRequest) -> FamilyPlan:
        assert isinstance(config, E2DiffSRConfig)
        if request.steps is not None and request.steps > config.diffusion_steps:
            raise InfSceneError(f"this e2diffsr model runs at most its T = {config.diffusion_steps} steps, got --steps {request.steps}")
        detail = resolve_detail(request.detail, config)
        if request.self_ensemble:
            check_self_ensemble(detail, request.detail)
        grid = latent_grid(*request.out_size, request.patch, request.overlap, request.key_origin)
        steps = tuple(Schedule(config.gammas()).respaced(request.steps or config.diffusion_steps)) if detail else ()
        out_px = grid.height * grid.width * LATENT_FACTOR**2
        state_bands = LATENT_CANVAS_BANDS[request.mode] if detail else 0
        canvas_bytes = 4 * (out_px * 3 + grid.height * grid.width * state_bands)
        if request.self_ensemble:
            geometry = SceneGeometry(request.lr_size, request.out_size, (grid.height, grid.width))
            tiles = ensemble_tile_count(config, geometry, request.kept)
            canvas_bytes += ensemble_canvas_bytes(config, geometry, request.kept)
        else:
            tiles = decode_tile_count(config, request.lr_size, request.out_size, grid, request.kept)
        return FamilyPlan(grid, steps, tiles, canvas_bytes, config.latent_channels, LATENT_FACTOR, detail,
                          request.self_ensemble)

    def denoiser(self, model: nn.Module, scale: float, lr_consistency: bool, precision: str) -> LatentPatchDenoiser:
        """The latent step; LR-consistency acts in the decode (finish), not on the latent."""
        assert isinstance(model, E2DiffSR)
        return LatentPatchDenoiser(model, scale, precision)

    def finish(self, job: SamplingJob, config: ModelContract, state: Optional[Canvas], lr: object,
               out_size: tuple[int, int], lr_consistency: bool, detail: Optional[float], kept: Optional[Region],
               self_ensemble: bool) -> Canvas:
        """The decode of the tiles under the kept pixels: the context around an extent is sampled (the joint
        process needs it) but not decoded (a 64-pixel block with its default margin decodes 9 times less). With
        self_ensemble (the plan allows it at detail 0 only), the mean of the decodes under the 8 symmetries."""
        assert isinstance(config, E2DiffSRConfig) and detail is not None  # the plan always decides it
        if self_ensemble:
            assert state is None and not detail
            return decode_ensemble(job, config, lr, out_size, kept, lr_consistency)
        return decode_scene(job, config, state, lr, out_size, lr_consistency, detail, kept)

    def unit_seconds(self, model: nn.Module, plan: FamilyPlan, scale: float, batch: int, precision: str) -> tuple[float, float]:
        """One latent step on a small batch of patches, and the run's largest decode tile (typical_tile)."""
        assert isinstance(model, E2DiffSR)
        device = next(model.parameters()).device
        denoiser = LatentPatchDenoiser(model, scale, precision)
        side = plan.grid.patch
        y = torch.zeros((batch, denoiser.state_channels, side, side))
        cond = torch.zeros((batch, model.config.channels, side * LATENT_FACTOR, side * LATENT_FACTOR))
        per_patch = (seconds(lambda: denoiser.posterior_mean(y, cond, plan.reverse_steps[0]), device) / batch
                     if plan.reverse_steps else 0.0)
        with autocast(device, precision):
            lr_size = (round(plan.grid.height * LATENT_FACTOR / scale), round(plan.grid.width * LATENT_FACTOR / scale))
            per_tile = seconds(typical_tile(model, scale, lr_size, plan.detail), device) if plan.finishing_units else 0.0
        return per_patch, per_tile

    def objective(self, options: TrainOptions, config: ModelContract, device: torch.device) -> Objective:
        assert isinstance(config, E2DiffSRConfig)
        return stage_objective(options, config, device)

    def add_train_flags(self, parser: argparse.ArgumentParser) -> None:
        defaults = TrainOptions(hr=[], val=None, out="")
        parser.add_argument("--stage", type=int, choices=[1, 2, 3], default=defaults.stage, help="e2diffsr: 1 trains the prior autoencoder and the regression branch, 2 the latent diffusion on a stage-1 model given by --init, 3 the texture head on a stage-2 model given by --init (default %(default)s)")
        parser.add_argument("--latent-loss", choices=list(LATENT_LOSSES), default=defaults.latent_loss, help="e2diffsr stage 2: l1 regresses the chain's z0 to the latent (the paper's Eq. 13; its minimiser is the median, one latent per input); energy trains it with the energy score on two chains per crop, whose minimiser is the latent's distribution, so --samples differ (default %(default)s)")
        parser.add_argument("--hr-crop", type=int, default=defaults.hr_crop, help="e2diffsr stage 3: truth crop side, the LR side following the scale (default: from --lr-crop)")
        parser.add_argument("--perceptual-weight", type=float, default=defaults.perceptual_weight, help="e2diffsr stage 3: weight of the Inception-feature term beside L1 (default %(default)s)")
        parser.add_argument("--l1-weight", type=float, default=defaults.l1_weight, help="e2diffsr stage 3: weight of the pixel L1 term: lower trades fidelity for texture (default %(default)s)")
        parser.add_argument("--adversarial-factor", type=float, default=defaults.adversarial_factor, help="e2diffsr stage 3: the adaptive adversarial weight's factor (default %(default)s)")
        parser.add_argument("--energy-weight", type=float, default=defaults.energy_weight, help="e2diffsr stage 3: weight of the texture-energy term, the local RMS of the detail over the bicubic base matched to the truth's, whatever its phase (default %(default)s: off)")
        parser.add_argument("--critic-input", choices=list(CRITIC_INPUTS), default=defaults.critic_input, help="e2diffsr stage 3: what the patch critic judges: the image, or only the detail over the bicubic base, the part the model invents (default %(default)s)")
        parser.add_argument("--train-detail", choices=list(TRAIN_DETAILS), default=defaults.train_detail, help="e2diffsr stage 3: full trains the texture head at detail 1; every at a detail drawn per batch from 0 to 1, the sampled latent scaled by it and the perceptual and adversarial terms weighted by it, so every --detail is a trained one (default %(default)s)")
        parser.add_argument("--texture-channels", type=int, default=defaults.texture_channels, help="e2diffsr stage 3: width of a new texture head (default %(default)s)")
        parser.add_argument("--critic-lr", type=float, default=defaults.critic_lr, help="e2diffsr stage 3: the patch critic's Adam rate (default %(default)s)")
        parser.add_argument("--critic-from", metavar="CHECKPOINT", help="e2diffsr stage 3: start the patch critic and its optimizer from this stage-3 checkpoint folder's (e.g. a head continued over a retrained regression branch given by --init), not afresh")
        parser.add_argument("--lr-crop", type=int, default=defaults.lr_crop, help="e2diffsr: low-resolution crop side; the truth crop is about this times the scale (default %(default)s)")
        parser.add_argument("--kl-weight", type=float, default=defaults.kl_weight, help="e2diffsr stage 1: weight of the latent's KL term (default %(default)s)")
        parser.add_argument("--freeze-prior", action="store_true", help="e2diffsr stage 1 from --init: train the regression branch only; the prior encoder and decoder stay as they are, so the latent, and the diffusion and texture head trained on it, stay valid")
        parser.add_argument("--prior-dropout", type=float, default=defaults.prior_dropout, help="e2diffsr stage 1: share of crops decoded without a prior, so the regression branch works alone (default %(default)s)")

    def new_config(self, args: argparse.Namespace) -> E2DiffSRConfig:
        return E2DiffSRConfig(scale_min=args.scale_min, scale_max=args.scale_max)
