"""The E2DiffSR-style two-stage model (../shared/papers/e2diffsr.txt): its config and its networks.

Stage 1 (latent space pretraining, Sec. III-B): `PriorEncoder` (the paper's DPEncoder, Eq. 1) encodes
the difference between the truth and its bicubic-upsampled low-resolution image into a KL-regularised
latent z on a grid 8 times coarser than the output; `PriorDecoder` (DPDecoder, Eq. 2) decodes z into
prior feature maps at 1/8, 1/4 and 1/2 of the output grid; `RegressionBranch` (DPESR's SR branch and
CSUM) refines features in low-resolution space, each refinement unit preceded by a modulation layer
that mixes in a prior map with scale-dependent weights (Eq. 3-5), and a continuous-scale upsampler
reads the output at any scale from 2 to 8, non-integer too.

Stage 2 (Sec. III-C): `ConditionNet` (CondNet, Eq. 11) turns the bicubic-upsampled low-resolution image
into condition features on the latent grid plus a direct estimate of z0 (the distillation term of
Eq. 13), and `LatentDenoiser` estimates z0 from (z_t, noise level, scale, condition) in T = 4 steps.

Choices of our own, for CPUs and for the engine: no normalisation layer in anything that decodes (a
tile with wide enough margins then equals a whole-scene pass, so decoding runs tiled); prior maps and
output pixels are sampled at positions computed from the global geometry (`Sampling`), never by
resizing a tile; the denoiser predicts z0 (not the noise), which is better conditioned when
sqrt(gamma_T) is 0.04; and z = 0, the prior's mean, decodes as the regression branch alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...modelformat.contract import ModelContract
from ..embedding import sinusoidal_embedding

LATENT_FACTOR = 8  # output pixels per latent pixel, along each axis (three halvings, as in the paper)
# Output pixels per pixel of each prior map PriorDecoder returns. The paper decodes up to the output
# grid; the branch reads the maps on the LR grid, which is 1/2 to 1/8 of the output, so a map finer
# than 1/4 would mostly be averaged away again, at four times the cost.
PRIOR_FACTORS = (8, 4)
# Latent pixels a prior map value reaches into z: inp (1) + two blocks (4) + the up level's conv and
# block (1 + 1), plus one for the bilinear read of the coarsest map.
PRIOR_RADIUS_LATENT = 8
UPSAMPLER_READ_CHANNELS = 16  # channels of each feature map the continuous upsampler reads per output pixel


@dataclass
class E2DiffSRConfig(ModelContract):
    """The E2DiffSR family: regression branch + differential-prior autoencoder + latent diffusion."""

    name: str = "e2diffsr"
    family: str = "e2diffsr"
    patch_size: int = 256  # output pixels of one latent patch side (the latent patch is patch_size / 8)
    latent_channels: int = 4
    features: int = 48  # width of the low-resolution regression branch
    refinement_units: int = 4  # FRUs, each preceded by a prior modulation layer
    blocks_per_unit: int = 2
    prior_channels: int = 32
    encoder_channels: int = 32
    upsampler_hidden: int = 48
    cond_channels: int = 64
    denoiser_channels: int = 64
    denoiser_blocks: int = 3
    diffusion_steps: int = 4  # T of the paper
    beta_noisiest: float = 0.99  # beta at t = T; the schedule is linear down to beta_cleanest at t = 1
    beta_cleanest: float = 0.1
    latent_scale: float = 1.0  # std of the encoder's latent means; the diffusion runs on z / latent_scale
    texture_channels: Optional[int] = None  # width of the texture head (stage 3); None: a model without one
    texture_blocks: int = 6
    default_detail: float = 1.0  # what a run uses without --detail: chosen by the benchmark (MODEL_CARD.md)
    # --detail also scales the sampled latent toward z = 0 (the regression branch's latent), for a chain that
    # samples: its invented part would otherwise be decoded in full at every detail (docs/method.md, "Detail" under e2diffsr).
    detail_scales_latent: bool = False

    @property
    def size_multiple(self) -> int:
        return LATENT_FACTOR

    def latent_share(self, detail: float) -> float:
        """The share of the sampled latent a run at this detail decodes: the detail where it scales z, else all of it
        (the engine's decode and stage 3's training both read it, so the head is trained as it is run)."""
        return detail if self.detail_scales_latent else 1.0

    def gammas(self) -> np.ndarray:
        """gamma_t = prod(1 - beta_i) for t = 1..T (float64), the paper's few-step schedule."""
        betas = np.linspace(self.beta_cleanest, self.beta_noisiest, self.diffusion_steps, dtype=np.float64)
        return np.cumprod(1.0 - betas)


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class PlainResBlock(nn.Module):
    """conv-ReLU-conv with a skip and no normalisation: its output depends only on a 2-pixel neighbourhood."""

    radius = 2

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3(channels, channels), nn.ReLU(inplace=True), conv3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RefinementUnit(nn.Module):
    """FRU (Fig. 3, lightened): residual blocks whose outputs are all kept and fused by a 1x1 convolution."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(PlainResBlock(channels) for _ in range(blocks))
        self.fuse = nn.Conv2d(channels * blocks, channels, 1)

    @property
    def radius(self) -> int:
        return PlainResBlock.radius * len(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels, h = [], x
        for block in self.blocks:
            h = block(h)
            levels.append(h)
        return x + self.fuse(torch.cat(levels, dim=1))


@dataclass(frozen=True)
class Sampling:
    """Where the pixels of one decoding pass lie, in each other's units, from the global geometry.

    `lr_rows_out`/`lr_cols_out`: centres of the low-resolution rows/columns in output pixels, measured
    from the output-grid origin of the latent region passed in. `out_rows_lr`/`out_cols_lr`: centres of
    the output rows/columns in low-resolution pixels, measured from the low-resolution region's origin.
    A tile and the whole scene give the same positions for the same pixel, so both decode alike.
    """

    lr_rows_out: torch.Tensor
    lr_cols_out: torch.Tensor
    out_rows_lr: torch.Tensor
    out_cols_lr: torch.Tensor

    @staticmethod
    def whole(lr_size: tuple[int, int], out_size: tuple[int, int]) -> "Sampling":
        """An LR image of lr_size under an output of out_size, the latent grid starting at the output's origin."""
        (h, w), (oh, ow) = lr_size, out_size
        return Sampling(centres(0, h, oh / h), centres(0, w, ow / w), centres(0, oh, h / oh), centres(0, ow, w / ow))


def centres(start: int, stop: int, ratio: float, origin: float = 0.0) -> torch.Tensor:
    """Centres of pixels start..stop-1 of one grid in the units of another grid `ratio` times finer, minus origin."""
    return torch.from_numpy((np.arange(start, stop, dtype=np.float64) + 0.5) * ratio - origin)


POSITION_BITS = 10  # fractional bits a read position keeps: 1/1024 of a pixel


def sample_at(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """x (B, C, h, w) read at the pixel-centre positions rows x cols (in x's pixels, float64), replicated borders."""
    return read_padded(pow2_padded(x), rows, cols, mode)


def pow2_padded(x: torch.Tensor) -> torch.Tensor:
    """x with its last rows and columns repeated up to power-of-two sides (for read_padded)."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, _pow2(width) - width, 0, _pow2(height) - height), mode="replicate")


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def read_padded(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """grid_sample (align_corners=False, border padding) of a pow2_padded map at positions rounded to POSITION_BITS.

    With power-of-two sides (up to 4096: a decode tile's finest map at any scale of 2 or more) and positions of
    POSITION_BITS fractional bits, grid_sample's float32 normalisation and its inverse are exact, so the same
    position reads the same taps with the same weights whatever the map's size and origin: a tile decodes bitwise
    as the whole scene does. (Normalising by any other size rounded differently per
    tile, and bf16 convolutions after the read made those last-bit differences 0.1 DN.) The padding repeats the
    border, so reads beyond the map's own edge give what border padding gives.
    """
    height, width = x.shape[-2:]
    assert height == _pow2(height) and width == _pow2(width), "read_padded needs a pow2_padded map"
    ys, xs = (_normalised(p, side) for p, side in ((rows, height), (cols, width)))
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).to(x.device)
    grid = grid[None].expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def _normalised(positions: torch.Tensor, side: int) -> torch.Tensor:
    """Pixel-centre positions as grid_sample's [-1, 1] coordinates, exact in float32 for a power-of-two side."""
    step = 2.0**POSITION_BITS
    return (2.0 * torch.round(positions.to(torch.float64) * step) / step / side - 1.0).to(torch.float32)


def bicubic_base(lr: torch.Tensor, where: Sampling) -> torch.Tensor:
    """The bicubic upsampling of lr at the output pixels (as the engine's resample.bicubic_window, tile-wise)."""
    return sample_at(lr, where.out_rows_lr, where.out_cols_lr, mode="bicubic")


class PriorEncoder(nn.Module):
    """DPEncoder (Eq. 1): (truth - bicubic LR, bicubic LR) -> mean and log-variance of z at 1/8 of the output.

    The paper's encoder convolves at full resolution before each halving; ours folds each 8 x 8 block
    onto the latent grid first (pixel-unshuffle, lossless) and works there, which costs 1/64 as much
    per layer and matters on CPUs, where stage 1 runs the encoder on every crop.
    """

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c = 4 * config.encoder_channels
        self.net = nn.Sequential(
            nn.PixelUnshuffle(LATENT_FACTOR),
            nn.Conv2d(2 * config.channels * LATENT_FACTOR**2, c, 1), nn.ReLU(inplace=True),
            PlainResBlock(c), PlainResBlock(c), nn.ReLU(inplace=True),
            conv3(c, 2 * config.latent_channels),
        )

    def forward(self, hr: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.net(torch.cat([hr - up, up], dim=1)).chunk(2, dim=1)
        return mean, log_var.clamp(-20.0, 10.0)


class PriorDecoder(nn.Module):
    """DPDecoder (Eq. 2): z -> prior feature maps on grids 8 and 4 times coarser than the output."""

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c = config.prior_channels
        self.inp = conv3(config.latent_channels, c)
        self.coarse = nn.Sequential(PlainResBlock(c), PlainResBlock(c))
        self.ups = nn.ModuleList(nn.Sequential(conv3(c, 4 * c), nn.PixelShuffle(2), PlainResBlock(c)) for _ in PRIOR_FACTORS[1:])

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        h = self.coarse(self.inp(z))
        maps = [h]
        for up in self.ups:
            h = up(h)
            maps.append(h)
        return maps


class ContinuousUpsampler(nn.Module):
    """CSUM (Eq. 6): LR features -> output pixels at any scale.

    The features are lifted to 2x and 4x the LR grid by pixel shuffles, the three maps (each first
    narrowed to a few channels, as reading them at every output pixel is the costly part) are read at
    each output pixel's centre (bilinear), and a per-pixel MLP that also sees log(scale) gives the
    residual over bicubic. Reading at positions, not resizing, is what makes non-integer scales and
    tiles exact.
    """

    radius_lr = 3  # the two shuffle convolutions and the bilinear read

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c, read = config.features, UPSAMPLER_READ_CHANNELS
        self.fine2 = nn.Sequential(conv3(c, 4 * read), nn.PixelShuffle(2))
        self.fine4 = nn.Sequential(conv3(read, 4 * read), nn.PixelShuffle(2))
        self.narrow = nn.Conv2d(c, read, 1)
        hidden = config.upsampler_hidden
        self.mlp = nn.Sequential(
            nn.Conv2d(3 * read + 1, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, config.channels, 1),
        )

    strip_rows = 64  # output rows per pass of the per-pixel part: its maps then stay in cache
    pixel_chunk = 2048  # pixels per call of the per-pixel MLP, every call this one shape (see `per_pixel`)

    def forward(self, f: torch.Tensor, where: Sampling, scale: torch.Tensor) -> torch.Tensor:
        f2 = self.fine2(f)
        maps = tuple(pow2_padded(m.float()) for m in (self.narrow(f), f2, self.fine4(f2)))
        rows, cols = where.out_rows_lr, where.out_cols_lr
        level = (torch.log(scale) / math.log(8.0)).view(-1, 1, 1, 1).float()
        return torch.cat([self._read(maps, rows[a : a + self.strip_rows], cols, level)
                          for a in range(0, len(rows), self.strip_rows)], dim=-2)

    def _read(self, maps: tuple[torch.Tensor, ...], rows: torch.Tensor, cols: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """The per-output-pixel part over some output rows, in float32 even under bf16 autocast: it is memory-bound,
        and bf16 made it no faster on the CPU (measured) while costing precision."""
        with torch.autocast(maps[0].device.type, enabled=False):
            read = [read_padded(m, factor * rows, factor * cols) for m, factor in zip(maps, (1, 2, 4))]
            return self.per_pixel(torch.cat([*read, level.expand(-1, 1, *read[0].shape[-2:])], dim=1))

    def per_pixel(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP at every pixel of x (B, C, h, w), as matrix products over rows of `pixel_chunk` pixels.

        A pixel's bits must not depend on the region it is computed in (a strip, a decode tile, the whole scene).
        Convolution and BLAS kernels pick their blocking, and with it the order of each sum, by the problem's
        shape: oneDNN's 1x1 convolution to 3 channels gave other bits in odd-height strips on one thread, and
        MKL's matrix product other bits for fewer than 12 rows. Every product here has the same shape, the last
        chunk padded with zeros, and a row's result does not depend on its place among the rows
        (tests/test_e2diffsr.py).
        """
        batch, _, height, width = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        count, chunk = rows.shape[0], self.pixel_chunk
        rows = F.pad(rows, (0, 0, 0, -count % chunk))
        out = torch.cat([self._mlp_rows(rows[a : a + chunk]) for a in range(0, rows.shape[0], chunk)])[:count]
        return out.view(batch, height, width, -1).permute(0, 3, 1, 2).contiguous()

    def _mlp_rows(self, h: torch.Tensor) -> torch.Tensor:
        """The MLP's 1x1 convolutions as linear maps of pixel rows (the same weights, kept as convolutions)."""
        for layer in self.mlp:
            h = F.linear(h, layer.weight.flatten(1), layer.bias) if isinstance(layer, nn.Conv2d) else layer(h)
        return h


class RegressionBranch(nn.Module):
    """DPESR's SR branch: LR features refined by FRUs, each input modulated by a prior map (Eq. 3-5), then CSUM."""

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c, units = config.features, config.refinement_units
        self.head = conv3(config.channels, c)
        self.modulations = nn.ModuleList(conv3(config.prior_channels, c) for _ in range(units))
        self.units = nn.ModuleList(RefinementUnit(c, config.blocks_per_unit) for _ in range(units))
        self.alphas = nn.Sequential(nn.Linear(1, 32), nn.ReLU(inplace=True), nn.Linear(32, 2 * units))
        self.tail = conv3(c, c)
        self.upsampler = ContinuousUpsampler(config)

    def modulation_weights(self, scale: torch.Tensor) -> torch.Tensor:
        """Eq. 3-4: (B, units, 2) weights of (FRU output, prior), L2-normalised per unit."""
        raw = self.alphas(torch.log(scale).view(-1, 1).float()).view(scale.shape[0], -1, 2)
        return raw.abs() / torch.sqrt((raw**2).sum(dim=-1, keepdim=True) + 1e-6)

    def refine(self, lr: torch.Tensor, priors: list[torch.Tensor], scale: torch.Tensor) -> torch.Tensor:
        """LR features after the FRUs, each input modulated by its prior map (priors on the LR grid, one per unit)."""
        f0 = self.head(lr)
        weights = self.modulation_weights(scale)[..., None, None, None]  # (B, units, 2, 1, 1, 1)
        f = f0
        for i, (modulate, unit) in enumerate(zip(self.modulations, self.units)):
            f = unit(weights[:, i, 0] * f + weights[:, i, 1] * modulate(priors[i]))  # Eq. 5
        return self.tail(f) + f0


class ConditionNet(nn.Module):
    """CondNet (Eq. 11): the bicubic LR folded onto the latent grid -> condition features and a direct z0 estimate."""

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c = config.cond_channels
        self.inp = nn.Conv2d(config.channels * LATENT_FACTOR**2, c, 1)
        self.body = nn.Sequential(PlainResBlock(c), PlainResBlock(c))
        self.head = conv3(c, config.latent_channels)

    def forward(self, folded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.body(self.inp(folded))
        return c, self.head(F.relu(c))


class EmbeddedBlock(nn.Module):
    """A PlainResBlock whose features are shifted by the (noise level, scale) embedding."""

    def __init__(self, channels: int, emb_dim: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv3(channels, channels), conv3(channels, channels)
        self.emb = nn.Linear(emb_dim, channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(F.relu(x)) + self.emb(emb)[:, :, None, None])
        return x + self.conv2(h)


class LatentDenoiser(nn.Module):
    """z0 estimate from (z_t, sqrt(gamma_t), scale, condition): CondNet's direct estimate plus a correction."""

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c, emb_dim = config.denoiser_channels, 4 * 32
        self.emb = nn.Sequential(nn.Linear(64, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = conv3(config.latent_channels * 2 + config.cond_channels, c)
        self.blocks = nn.ModuleList(EmbeddedBlock(c, emb_dim) for _ in range(config.denoiser_blocks))
        self.out = conv3(c, config.latent_channels)

    def forward(self, z_t: torch.Tensor, sqrt_gamma: torch.Tensor, scale: torch.Tensor, cond: torch.Tensor, direct: torch.Tensor) -> torch.Tensor:
        emb = self.emb(torch.cat([sinusoidal_embedding(sqrt_gamma, 32), sinusoidal_embedding(torch.log(scale) / 10.0, 32)], dim=1))
        h = self.inp(torch.cat([z_t, direct, cond], dim=1))
        for block in self.blocks:
            h = block(h, emb)
        return direct + self.out(F.relu(h))


class E2DiffSR(nn.Module):
    """All five networks of the family in one module, so that one safetensors file holds the model."""

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = PriorEncoder(config)
        self.prior_decoder = PriorDecoder(config)
        self.regression = RegressionBranch(config)
        self.condition = ConditionNet(config)
        self.denoiser = LatentDenoiser(config)
        self.texture = TextureHead(config) if config.texture_channels else None

    def features(self, lr: torch.Tensor, z: torch.Tensor, where: Sampling, scale: torch.Tensor) -> torch.Tensor:
        """The regression branch's LR features, refined under the prior decoded from z (raw units)."""
        maps = self.prior_decoder(z)
        rows, cols = where.lr_rows_out, where.lr_cols_out
        on_lr = [sample_at(m, rows / factor, cols / factor) for m, factor in zip(maps, PRIOR_FACTORS)]
        per_unit = [on_lr[min(i, len(on_lr) - 1)] for i in range(self.config.refinement_units)]  # coarse to fine
        return self.regression.refine(lr, per_unit, scale)

    def upsample(self, lr: torch.Tensor, features: torch.Tensor, where: Sampling, scale: torch.Tensor) -> torch.Tensor:
        """The output pixels: bicubic of lr plus CSUM's residual read from the features (same LR grid as lr)."""
        return bicubic_base(lr, where) + self.regression.upsampler(features, where, scale)

    def decode(self, lr: torch.Tensor, z: torch.Tensor, where: Sampling, scale: torch.Tensor) -> torch.Tensor:
        """DPESR (Algorithm 2, line 9): the output in model units from the LR image and the latent z (raw units)."""
        return self.upsample(lr, self.features(lr, z, where, scale), where, scale)


TEXTURE_FOLD = 4  # output pixels per texture-head pixel, along each axis


class TextureHead(nn.Module):
    """Stage 3 (ours): the detail the regression branch averages away, drawn from the decoded output and z.

    L1 training gives the conditional mean, which is blur; this head is trained with perceptual and
    adversarial terms instead (e2diffsr/texture.py), on top of the frozen regression output. The output
    is folded 4 x 4 onto a coarser grid (pixel-unshuffle, lossless) so that a 64-channel body costs
    1/16 as much per layer, as in the texture lab of ../shared/notes/texture-lab.md. The chain's latent
    sample z is an input, so different seeds draw different texture and --samples' spread marks it.
    The last convolution starts at zero: an untrained head leaves the regression output unchanged.
    """

    def __init__(self, config: E2DiffSRConfig) -> None:
        super().__init__()
        c, fold = config.texture_channels, config.channels * TEXTURE_FOLD**2
        self.inp = conv3(fold + config.latent_channels + 1, c)
        self.body = nn.Sequential(*(PlainResBlock(c) for _ in range(config.texture_blocks)))
        self.out = conv3(c, fold)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def radius_out(config: E2DiffSRConfig) -> int:
        """Output pixels around a pixel that its texture depends on (the fold's block included)."""
        return TEXTURE_FOLD * (2 + PlainResBlock.radius * config.texture_blocks + 1)

    def forward(self, base: torch.Tensor, z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """base (B, C, H, W) starting on the latent grid; z (B, latent, ceil(H/8), ceil(W/8)) in diffusion units.

        A side that is not a multiple of 8 (the scene's last rows or columns) is padded by replication first,
        the same way whether the scene is decoded whole or in tiles.
        """
        height, width = base.shape[-2:]
        base = F.pad(base, (0, -width % LATENT_FACTOR, 0, -height % LATENT_FACTOR), mode="replicate")
        folded = F.pixel_unshuffle(base, TEXTURE_FOLD)
        z_fine = F.interpolate(z.to(folded.dtype), scale_factor=LATENT_FACTOR // TEXTURE_FOLD, mode="nearest")
        level = (torch.log(scale) / math.log(8.0)).view(-1, 1, 1, 1).expand(-1, 1, *folded.shape[-2:]).to(folded.dtype)
        h = self.body(self.inp(torch.cat([folded, z_fine, level], dim=1)))
        return F.pixel_shuffle(self.out(F.relu(h)), TEXTURE_FOLD)[..., :height, :width]


def decode_margin_lr(config: E2DiffSRConfig) -> int:
    """LR pixels around a tile that decoding reads, so that the tile decodes as the whole scene does.

    The regression branch's reach (head, each unit's blocks, tail, upsampler) plus the bicubic base's
    2 pixels. The prior maps are read at positions, so their reach is into z (PRIOR_RADIUS_LATENT), not
    into the LR grid. The default config gives 24; its measured reach is 20.5.
    """
    return 1 + config.refinement_units * PlainResBlock.radius * config.blocks_per_unit + 1 + ContinuousUpsampler.radius_lr + 2


def fold_condition(up: torch.Tensor) -> torch.Tensor:
    """The bicubic LR on the output grid (B, C, 8h, 8w) folded onto the latent grid (B, 64 C, h, w).

    The values of F.pixel_unshuffle(up, 8), laid out channels-last, the layout CondNet's convolutions run in: this
    copy reads runs of 8 pixels and writes whole pixels, where pixel_unshuffle and a layout change copied twice.
    """
    b, c, h, w = up.shape
    f = LATENT_FACTOR
    pixels = up.reshape(b, c, h // f, f, w // f, f).permute(0, 2, 4, 1, 3, 5).contiguous()
    return pixels.view(b, h // f, w // f, c * f * f).permute(0, 3, 1, 2)
