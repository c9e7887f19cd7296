"""Training the E2DiffSR family in its two stages (e2diffsr.txt, Sec. III-D), on infscene.training's Trainer.

Stage 1 trains the prior encoder, the prior decoder and the regression branch together on
L1(truth, output) plus a small KL term on the latent (Eq. 12 without the adversarial term, whose
weight in the paper is 1e-6). With probability `prior_dropout` a crop is decoded from z = 0, the
prior's mean, so the regression branch alone is a good model too (it ships as the fast option).

Stage 2 freezes those and trains CondNet and the latent denoiser as the paper does (Algorithm 1): the
whole T = 4 reverse chain is run, from pure noise as at inference and with the same keyed-by-step
noise draws, and the loss is L1 between the chain's z0 and the encoder's latent plus L1 between
CondNet's direct estimate and it (Eq. 13).

Crops: the low-resolution side is fixed (`lr_crop`) and the truth side is the multiple of 8 nearest
lr_crop * scale, so every batch costs about the same whatever its scale, and the scale the network
is told is the exact ratio of the two sides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ...diffusion.schedule import ReverseStep, Schedule
from ...errors import InfSceneError
from ...training.checkpoints import AUXILIARY_FILE, optimizer_tensors, restore_optimizer, verified_state
from ...training.data import Degradation, HRImage, degrade, load_hr_images, median_pixel_size, random_crop, random_dihedral
from ...training.images import write_image_rows
from ...training.trainer import TrainOptions
from ..precision import autocast, fast_layout
from .decode import owner, project_block_means
from .denoiser import reverse_chain
from .network import LATENT_FACTOR, E2DiffSR, E2DiffSRConfig, Sampling, bicubic_base, fold_condition
from .texture import PatchDiscriminator, PerceptualLoss, adaptive_weight, critic_view, hinge_critic_loss, texture_energy_loss
from .weights import load_model

VAL_SCALES = (2.0, 3.7, 5.0, 8.0)
VAL_LR_SIDE = 24  # fits sr_dev's 200-pixel crops at 8x
PREVIEW_SCALE = 4.0
PREVIEW_IMAGES = 3
LATENT_SCALE_BATCHES = 16


@dataclass(frozen=True)
class PairBatch:
    """Truth crops (B, C, H, W), their low-resolution images (B, C, h, w), the bicubic upsampling, geometry, scale (B,)."""

    hr: torch.Tensor
    lr: torch.Tensor
    up: torch.Tensor
    where: Sampling
    scale: torch.Tensor

    def to(self, device: torch.device) -> "PairBatch":
        return PairBatch(self.hr.to(device), self.lr.to(device), self.up.to(device), self.where, self.scale.to(device))


def crop_sides(lr_side: int, scale: float) -> tuple[int, int]:
    """(truth side, low-resolution side): the truth a multiple of 8 near lr_side * scale."""
    hr = LATENT_FACTOR * max(1, round(lr_side * scale / LATENT_FACTOR))
    return hr, max(1, round(hr / scale))


def make_pairs(patches: Sequence[np.ndarray], lr_side: int, config: E2DiffSRConfig, degradation: Degradation = Degradation(),
               generator: Optional[torch.Generator] = None) -> PairBatch:
    """(H, W, C) model-unit truth patches -> a batch degraded to lr_side pixels (blur and noise drawn per batch)."""
    hr = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float()
    side = hr.shape[-1]
    scale = side / lr_side
    draws = torch.rand(2, generator=generator)
    lr = degrade(hr, scale, config, float(draws[0]) * degradation.blur_sigma, float(draws[1]) * degradation.noise_std, generator)
    where = Sampling.whole(tuple(lr.shape[-2:]), (side, side))
    return PairBatch(hr, lr, bicubic_base(lr, where), where, torch.full((hr.shape[0],), scale))


class PairBatches:
    """Random pairs: area-weighted choice among the images large enough for the batch's crop, dihedral turns."""

    def __init__(self, images: Sequence[HRImage], config: E2DiffSRConfig, lr_side: int, batch: int, degradation: Degradation,
                 hr_side: Optional[int] = None) -> None:
        self.images, self.config, self.lr_side, self.batch, self.degradation = list(images), config, lr_side, batch, degradation
        self.hr_side = hr_side
        self.areas = np.array([img.valid.sum() for img in self.images], dtype=np.float64)
        self.sides = np.array([min(img.valid.shape) for img in self.images])
        largest = self.sides_at(config.scale_max)[0]
        if self.sides.max() < largest:
            raise InfSceneError(f"no training raster is {largest} px wide, as {config.scale_max:g}x crops of {lr_side} LR px need; lower --lr-crop")

    def sides_at(self, scale: float) -> tuple[int, int]:
        """(truth side, LR side) of a crop at this scale: the LR side fixed, or with hr_side the truth side fixed
        (stage 3, whose perceptual and adversarial terms cost per truth pixel)."""
        if self.hr_side is None:
            return crop_sides(self.lr_side, scale)
        side = LATENT_FACTOR * max(1, round(self.hr_side / LATENT_FACTOR))
        return side, max(1, round(side / scale))

    def draw(self, rng: np.random.Generator, generator: torch.Generator) -> PairBatch:
        scale = float(rng.uniform(self.config.scale_min, self.config.scale_max))
        side, lr_side = self.sides_at(scale)
        weights = np.where(self.sides >= side, self.areas, 0.0)
        chosen = rng.choice(len(self.images), size=self.batch, p=weights / weights.sum())
        patches = [random_dihedral(random_crop(self.images[i], side, rng), rng) for i in chosen]
        return make_pairs(patches, lr_side, self.config, self.degradation, generator)


def fixed_pairs(images: Sequence[HRImage], config: E2DiffSRConfig, scales: Sequence[float], lr_side: int = VAL_LR_SIDE) -> list[PairBatch]:
    """Validation pairs: the centre crop of every image that fits, at each scale, no blur or noise."""
    batches = []
    for scale in scales:
        side, small = crop_sides(lr_side, scale)
        centres = []
        for img in images:
            height, width = img.valid.shape
            if min(height, width) >= side:
                top, left = (height - side) // 2, (width - side) // 2
                centres.append(img.pixels[top : top + side, left : left + side])
        if centres:
            batches.append(make_pairs(centres, small, config))
    return batches


def sample_latent(model: E2DiffSR, batch: PairBatch, steps: Sequence[ReverseStep], generator: torch.Generator,
                  samples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(z0 from the whole reverse chain run from pure noise, CondNet's direct estimate), both in diffusion units.

    With samples > 1 the chain runs that many times on one CondNet pass, with independent noise, and z0 is
    (samples, B, C, h, w)."""
    cond, direct = model.condition(fold_condition(batch.up))
    shape = (batch.hr.shape[0], model.config.latent_channels, *[s // LATENT_FACTOR for s in batch.hr.shape[-2:]])
    chains = []
    for _ in range(samples):
        noises = [torch.randn(shape, generator=generator).to(batch.up.device) for _ in range(len(steps) + 1)]
        chains.append(reverse_chain(model, cond, direct, batch.scale, steps, noises))
    return (chains[0] if samples == 1 else torch.stack(chains)), direct


def energy_score(first: torch.Tensor, second: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The energy score of two independent samples against the target, averaged over the batch:
    (d(first, target) + d(second, target)) / 2 - d(first, second) / 2, d the RMS distance over each example.

    A strictly proper scoring rule (Gneiting & Raftery 2007; "engression", Shen & Meinshausen 2024): its expected
    value is least when the samples are drawn from the target's own distribution given the input, whereas L1's
    minimiser is the median, a single latent that decodes to the regression branch's blur.
    """
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.mean((a - b) ** 2, dim=tuple(range(1, a.dim()))) + 1e-12)

    return torch.mean(0.5 * (distance(first, target) + distance(second, target)) - 0.5 * distance(first, second))


CHAIN_LOSSES = {  # --latent-loss: how stage 2 scores the chain's z0, as the model's notes name it
    "l1": "L1 on z0 + CondNet distillation, Eq. 13",
    "energy": "energy + variogram scores of two chains + CondNet distillation",
}
LATENT_LOSSES = tuple(CHAIN_LOSSES)
VARIOGRAM_POWER = 0.5  # Scheuerer & Hamill's choice: robust to the latent's heavy tails
VARIOGRAM_EPS = 1e-6  # |d|^p is taken as (d^2 + eps)^(p/2): its gradient at d = 0 is then finite


def variogram_score(first: torch.Tensor, second: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over neighbouring latent pixels (along rows and columns) of (|target_i - target_j|^p - the two samples'
    mean |x_i - x_j|^p)^2 (Scheuerer & Hamill 2015).

    The energy score hardly sees how neighbouring values move together (in tens of dimensions it prefers
    samples with the right values one by one, however they are arranged: measured in the tests): trained
    on it alone, the chain drew independent noise per latent pixel, which the decoder draws as an 8 px grid.
    This score asks the samples' neighbour differences to be the truth's, so their local structure follows.
    """
    def differences(z: torch.Tensor) -> list[torch.Tensor]:
        return [(torch.diff(z, dim=axis) ** 2 + VARIOGRAM_EPS) ** (VARIOGRAM_POWER / 2) for axis in (-1, -2)]

    terms = [torch.mean((t - 0.5 * (a + b)) ** 2)
             for t, a, b in zip(differences(target), differences(first), differences(second))]
    return torch.stack(terms).mean()


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) per latent element, averaged."""
    return 0.5 * torch.mean(mean**2 + torch.exp(log_var) - 1.0 - log_var)


def start_model(options: TrainOptions, config: E2DiffSRConfig, device: torch.device) -> E2DiffSR:
    """The family's networks, from --init's weights where given; a texture head the init model lacks starts
    at zero (it then leaves the output unchanged)."""
    model = E2DiffSR(config)
    if options.init:
        source = load_model(options.init)
        if not isinstance(source, E2DiffSR):
            raise InfSceneError(f"--init {options.init} is not an e2diffsr model")
        missing, _ = model.load_state_dict(source.state_dict(), strict=source.texture is not None or model.texture is None)
        if any(not key.startswith("texture.") for key in missing):
            raise InfSceneError(f"--init {options.init} lacks weights this model needs: {missing[0]}")
    return fast_layout(model.to(device), device).train()


class _PairData:
    """The training and validation pairs of a run, shared by both stages."""

    def __init__(self, options: TrainOptions, config: E2DiffSRConfig) -> None:
        images = load_hr_images(options.hr, config, crop_sides(options.lr_crop, config.scale_min)[0],
                                "use a smaller --lr-crop")
        config.train_pixel_size_m = median_pixel_size(images)
        self.batches = PairBatches(images, config, options.lr_crop, options.batch, Degradation(options.blur_sigma, options.noise_std),
                                   options.hr_crop or None)
        self.validation: list[PairBatch] = []
        self.preview_batch: Optional[PairBatch] = None
        if options.val:
            val_images = load_hr_images(options.val, config, crop_sides(VAL_LR_SIDE, config.scale_min)[0],
                                        "leave them out of --val")
            self.validation = fixed_pairs(val_images, config, VAL_SCALES)
            self.preview_batch = fixed_pairs(val_images[:PREVIEW_IMAGES], config, [PREVIEW_SCALE], lr_side=48)[0]

    @torch.no_grad()
    def write_preview(self, path: Path, model: E2DiffSR, third: Callable[[PairBatch], torch.Tensor]) -> None:
        """Rows of the preview crops: bicubic | regression alone | third(batch) | truth."""
        if self.preview_batch is not None:
            b = self.preview_batch.to(next(model.parameters()).device)
            write_image_rows(path, [b.up, regression_alone(model, b), third(b), b.hr])

    def mean_l1(self, output: Callable[[PairBatch], torch.Tensor]) -> Optional[float]:
        """Pixel-weighted L1 (model units) of output(batch) against the truth over the validation pairs."""
        if not self.validation:
            return None
        total = sum(float(torch.abs(output(b) - b.hr).sum()) for b in self.validation)
        return total / sum(b.hr.numel() for b in self.validation)


def regression_alone(model: E2DiffSR, batch: PairBatch) -> torch.Tensor:
    """The regression branch without a prior: decoding from z = 0, the prior's mean."""
    z = torch.zeros((batch.hr.shape[0], model.config.latent_channels, *[s // LATENT_FACTOR for s in batch.hr.shape[-2:]]))
    return model.decode(batch.lr, z.to(batch.lr.device), batch.where, batch.scale)


class PriorObjective:
    """Stage 1: prior autoencoder and regression branch, L1 + KL, with prior dropout."""

    def __init__(self, options: TrainOptions, config: E2DiffSRConfig, device: torch.device) -> None:
        if options.freeze_prior and not options.init:
            raise InfSceneError("--freeze-prior keeps a trained prior: pass --init MODEL_DIR")
        self.data = _PairData(options, config)
        self.model = start_model(options, config, device)
        self.device, self.kl_weight, self.dropout = device, options.kl_weight, options.prior_dropout
        prior = [self.model.encoder, self.model.prior_decoder]
        if options.freeze_prior:
            for part in prior:
                part.requires_grad_(False)
            self.trained: list[nn.Module] = [self.model.regression]
            self.description = "E2DiffSR stage 1 (regression branch under the frozen prior; L1, prior dropout)"
        else:  # this order is the optimizer state's in every stage-1 checkpoint written so far
            self.trained = [*prior, self.model.regression]
            self.description = "E2DiffSR stage 1 (prior autoencoder + regression branch; L1 + KL, prior dropout)"

    def parameters(self) -> Iterable[nn.Parameter]:
        return [p for part in self.trained for p in part.parameters()]

    def loss(self, model: nn.Module, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        batch = self.data.batches.draw(rng, generator).to(self.device)
        mean, log_var = model.encoder(batch.hr, batch.up)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=generator).to(self.device)
        kept = (torch.rand(mean.shape[0], generator=generator) >= self.dropout).to(z)
        output = model.decode(batch.lr, z * kept[:, None, None, None], batch.where, batch.scale)
        return torch.mean(torch.abs(output - batch.hr)) + self.kl_weight * kl_divergence(mean, log_var)

    @torch.no_grad()
    def validate(self, model: nn.Module) -> Optional[float]:
        """L1 of the regression branch alone: what the prior cannot be relied on to fix."""
        return self.data.mean_l1(lambda b: regression_alone(model, b.to(self.device)).cpu())

    def preview(self, model: nn.Module, path: Path) -> None:
        """Rows: bicubic | regression alone | decoded from the truth's own prior | truth."""
        self.data.write_preview(path, model, lambda b: model.decode(b.lr, model.encoder(b.hr, b.up)[0], b.where, b.scale))


class LatentObjective:
    """Stage 2: CondNet and the latent denoiser, the whole reverse chain run (Algorithm 1), Eq. 13.

    With --latent-loss energy the chain's L1 term is replaced by the energy score plus the variogram score of two
    chains run on the same crop (CondNet's distillation L1 stays): the paper's L1 teaches the chain to return one latent per
    input whatever its noise, so the diffusion adds nothing a regression would not; a proper score teaches it
    to sample.
    """

    def __init__(self, options: TrainOptions, config: E2DiffSRConfig, device: torch.device) -> None:
        if not options.init:
            raise InfSceneError("stage 2 trains on a stage-1 model: pass --init MODEL_DIR (the folder stage 1 wrote)")
        self.data = _PairData(options, config)
        self.model = start_model(options, config, device)
        for part in (self.model.encoder, self.model.prior_decoder, self.model.regression):
            part.requires_grad_(False)
        self.device = device
        self.steps: list[ReverseStep] = Schedule(config.gammas()).respaced(config.diffusion_steps)
        self.seed, self.latent_loss = options.seed, options.latent_loss
        self.description = f"E2DiffSR stage 2 (latent denoiser, T = 4, all reverse steps run; {CHAIN_LOSSES[self.latent_loss]})"
        # Deterministic (fixed draws, frozen encoder), so a resumed run measures the same value again.
        config.latent_scale = self.measure_latent_scale(options.seed)

    @torch.no_grad()
    def measure_latent_scale(self, seed: int) -> float:
        """The std of the encoder's latent means over a few training batches: the diffusion runs on z / this."""
        means = []
        for index in range(LATENT_SCALE_BATCHES):
            rng = np.random.default_rng([seed, 7, index])
            batch = self.data.batches.draw(rng, torch.Generator().manual_seed(index)).to(self.device)
            means.append(self.model.encoder(batch.hr, batch.up)[0].flatten())
        return float(torch.cat(means).std())

    def parameters(self) -> Iterable[nn.Parameter]:
        return [*self.model.condition.parameters(), *self.model.denoiser.parameters()]

    def latent_target(self, model: E2DiffSR, batch: PairBatch) -> torch.Tensor:
        with torch.no_grad():
            return model.encoder(batch.hr, batch.up)[0] / model.config.latent_scale

    def loss(self, model: nn.Module, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        batch = self.data.batches.draw(rng, generator).to(self.device)
        target = self.latent_target(model, batch)
        if self.latent_loss == "energy":
            (first, second), direct = sample_latent(model, batch, self.steps, generator, samples=2)
            chain_loss = energy_score(first, second, target) + variogram_score(first, second, target)
        else:
            z0, direct = sample_latent(model, batch, self.steps, generator)
            chain_loss = torch.mean(torch.abs(z0 - target))
        return chain_loss + torch.mean(torch.abs(direct - target))

    def full_model(self, model: E2DiffSR, batch: PairBatch, seed: int) -> torch.Tensor:
        z0, _ = sample_latent(model, batch, self.steps, torch.Generator().manual_seed(seed))
        return model.decode(batch.lr, z0 * model.config.latent_scale, batch.where, batch.scale)

    @torch.no_grad()
    def validate(self, model: nn.Module) -> Optional[float]:
        """L1 of the full model's output (fixed noise): what the diffusion adds on top of the regression branch."""
        return self.data.mean_l1(lambda b: self.full_model(model, b.to(self.device), self.seed).cpu())

    def preview(self, model: nn.Module, path: Path) -> None:
        """Rows: bicubic | regression alone | full model | truth."""
        self.data.write_preview(path, model, lambda b: self.full_model(model, b, self.seed))


TRAIN_DETAILS = {  # --train-detail: the details stage 3 trains the texture head at, as the model's notes name them
    "full": "",
    "every": ", at a detail drawn per batch from 0 to 1 (the latent scaled by it, the texture terms weighted by it)",
}


def project_onto(output: torch.Tensor, batch: PairBatch) -> torch.Tensor:
    """The exact LR projection of whole crops: each LR block's output mean set to the LR pixel (as the decode does)."""
    (h, w), (oh, ow) = batch.lr.shape[-2:], output.shape[-2:]
    return project_block_means(output, batch.lr, owner(h, oh), owner(w, ow))


class TextureObjective:
    """Stage 3: the texture head on the frozen stages 1-2, L1 + perceptual (+ texture energy) + adaptive adversarial,
    after projection.

    The head sees the regression output decoded from the chain's latent sample and that sample itself;
    every loss is taken on the LR-projected output, as the engine writes it. The patch critic trains in
    the same step on the detached output (hinge loss, Adam (0.5, 0.9) as in the LDM autoencoder), and
    its state travels in the trainer's checkpoints (auxiliary_state) so --resume continues the game.
    """

    def __init__(self, options: TrainOptions, config: E2DiffSRConfig, device: torch.device) -> None:
        if not options.init:
            raise InfSceneError("stage 3 trains on a stage-2 model: pass --init MODEL_DIR (e.g. resources/models/e2diffsr)")
        config.texture_channels = config.texture_channels or options.texture_channels
        self.data = _PairData(options, config)
        self.model = start_model(options, config, device)
        for name, part in self.model.named_children():
            part.requires_grad_(name == "texture")
        self.device, self.seed, self.options = device, options.seed, options
        energy = f" + texture-energy (weight {options.energy_weight:g})" if options.energy_weight else ""
        critic = " (the critic on the detail over bicubic)" if options.critic_input == "detail" else ""
        if options.train_detail not in TRAIN_DETAILS:
            raise InfSceneError(f"--train-detail must be one of {', '.join(TRAIN_DETAILS)}, got {options.train_detail!r}")
        # A head trained at every detail sees the latent scaled as the engine will scale it at that detail.
        config.detail_scales_latent = config.detail_scales_latent or options.train_detail == "every"
        self.description = (f"E2DiffSR stage 3 (texture head; L1 + Inception-feature{energy} + adaptive patch-GAN{critic} "
                            f"terms on the LR-projected output{TRAIN_DETAILS[options.train_detail]})")
        self.steps: list[ReverseStep] = Schedule(config.gammas()).respaced(config.diffusion_steps)
        self.perceptual = fast_layout(PerceptualLoss().to(device), device)
        self.critic = fast_layout(PatchDiscriminator(config.channels).to(device), device)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=options.critic_lr, betas=(0.5, 0.9))
        if options.critic_from:
            self.load_auxiliary_state(critic_state(Path(options.critic_from)))

    def parameters(self) -> Iterable[nn.Parameter]:
        return self.model.texture.parameters()

    def generate(self, model: E2DiffSR, batch: PairBatch, generator: torch.Generator, detail: float = 1.0) -> torch.Tensor:
        """The projected output at this detail, as the engine makes it: the regression output decoded from the chain's
        sample (scaled by the detail where the model's config says so), plus that share of the head's texture."""
        with autocast(batch.lr.device, self.options.precision):
            with torch.no_grad():
                z0, _ = sample_latent(model, batch, self.steps, generator)
                z0 = model.config.latent_share(detail) * z0
                base = model.decode(batch.lr, z0 * model.config.latent_scale, batch.where, batch.scale).float()
            residual = model.texture(base, z0, batch.scale).float()
        return project_onto(base + detail * residual, batch)

    def loss(self, model: nn.Module, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        batch = self.data.batches.draw(rng, generator).to(self.device)
        detail = float(rng.uniform(0.0, 1.0)) if self.options.train_detail == "every" else 1.0
        output = self.generate(model, batch, generator, detail)
        with autocast(self.device, self.options.precision):
            critic_loss = hinge_critic_loss(self.judge(batch.hr, batch), self.judge(output.detach(), batch))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        with autocast(self.device, self.options.precision):
            texture = (self.options.perceptual_weight * self.perceptual(output, batch.hr)
                       + self.options.energy_weight * texture_energy_loss(output, batch.hr, batch.up))
            reconstruction = self.options.l1_weight * torch.mean(torch.abs(output - batch.hr)) + detail * texture
            adversarial = -torch.mean(self.judge(output, batch).float())
        weight = detail * adaptive_weight(reconstruction, adversarial, model.texture.out.weight, self.options.adversarial_factor)
        return reconstruction + weight * adversarial

    def judge(self, x: torch.Tensor, batch: PairBatch) -> torch.Tensor:
        """The critic's logits for x, a crop of this batch, seen as --critic-input says."""
        return self.critic(critic_view(x, batch.hr, batch.up, self.options.critic_input))

    def auxiliary_state(self) -> dict[str, torch.Tensor]:
        """The critic and its optimizer, for the trainer's checkpoints."""
        tensors, _ = optimizer_tensors(self.critic_optimizer)
        return {**{f"critic.{k}": v.detach().cpu() for k, v in self.critic.state_dict().items()},
                **{f"critic_optimizer.{k}": v for k, v in tensors.items()}}

    def load_auxiliary_state(self, state: dict[str, torch.Tensor]) -> None:
        self.critic.load_state_dict({k[len("critic."):]: v for k, v in state.items() if k.startswith("critic.")})
        groups = {"param_groups": self.critic_optimizer.state_dict()["param_groups"]}
        prefix = "critic_optimizer."
        restore_optimizer(self.critic_optimizer, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, groups)

    @torch.no_grad()
    def validate(self, model: nn.Module) -> Optional[float]:
        """L1 + perceptual distance of the full-detail output (fixed noise), at unit weights whatever the run's loss
        weights, so that runs of different recipes are chosen and compared by one measure."""
        def distance(b: PairBatch) -> float:
            b = b.to(self.device)
            output = self.generate(model, b, torch.Generator().manual_seed(self.seed))
            return float(torch.mean(torch.abs(output - b.hr)) + self.perceptual(output, b.hr))

        if not self.data.validation:
            return None
        return float(np.mean([distance(b) for b in self.data.validation]))

    def preview(self, model: nn.Module, path: Path) -> None:
        """Rows: bicubic | regression alone | full detail | truth."""
        self.data.write_preview(path, model, lambda b: self.generate(model, b, torch.Generator().manual_seed(self.seed)))


def critic_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The critic and its optimizer saved in a stage-3 checkpoint folder, once its checksums are verified: a head
    continued on new frozen parts (--init) keeps the game it was playing instead of facing a critic that knows nothing."""
    verified_state(checkpoint)
    if not (checkpoint / AUXILIARY_FILE).is_file():
        raise InfSceneError(f"--critic-from {checkpoint}: not a stage-3 checkpoint (it holds no {AUXILIARY_FILE})")
    return load_file(str(checkpoint / AUXILIARY_FILE))


def stage_objective(options: TrainOptions, config: E2DiffSRConfig, device: torch.device) -> PriorObjective | LatentObjective | TextureObjective:
    objectives = {1: PriorObjective, 2: LatentObjective, 3: TextureObjective}
    if options.stage not in objectives:
        raise InfSceneError(f"--stage must be 1 (autoencoder + regression), 2 (latent diffusion) or 3 (texture head), got {options.stage}")
    return objectives[options.stage](options, config, device)
