"""The SR3 conditional U-Net and its config.

The network predicts the noise in a noisy high-resolution patch given the bicubic-upsampled
low-resolution patch (concatenated on the channel axis), the continuous noise level
sqrt(gamma) and the scale factor. Conditioning on the scale lets one model serve 5x
(3 m -> 0.6 m) as well as non-integer factors (3.7 m -> 0.6 m).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ...modelformat.contract import ModelContract
from ..embedding import sinusoidal_embedding


@dataclass
class ModelConfig(ModelContract):
    """The SR3 family: a pixel-space conditional U-Net (the InfScene paper's model)."""

    name: str = "sr3"
    family: str = "sr3"
    base_channels: int = 32
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 4])
    res_blocks: int = 1
    norm_groups: int = 8
    dropout: float = 0.0
    patch_size: int = 128

    @property
    def size_multiple(self) -> int:
        """Patch sides must be a multiple of this (one halving per extra U-Net level)."""
        return 2 ** (len(self.channel_mults) - 1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block whose features are shifted by the embedding."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention, used only at the lowest resolution where it is cheap."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
        )[:, 0]
        return x + self.out(attended.transpose(1, 2).reshape(b, c, h, w))


class SR3UNet(nn.Module):
    """eps_theta(x_lr_up, y_t, sqrt(gamma), scale) for patches whose side is a multiple of 2^(levels-1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c0, groups, drop = config.base_channels, config.norm_groups, config.dropout
        emb_dim = 4 * c0
        self.noise_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.scale_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(2 * config.channels, c0, 3, padding=1)

        widths = [c0 * m for m in config.channel_mults]
        self.down = nn.ModuleList()
        skip_widths = [c0]
        cur = c0
        for level, width in enumerate(widths):
            for _ in range(config.res_blocks):
                self.down.append(ResBlock(cur, width, emb_dim, groups, drop))
                cur = width
                skip_widths.append(cur)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skip_widths.append(cur)

        self.mid1 = ResBlock(cur, cur, emb_dim, groups, drop)
        self.mid_attn = SelfAttention(cur, groups)
        self.mid2 = ResBlock(cur, cur, emb_dim, groups, drop)

        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(config.res_blocks + 1):
                self.up.append(ResBlock(cur + skip_widths.pop(), width, emb_dim, groups, drop))
                cur = width
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(nn.GroupNorm(groups, cur), nn.SiLU(), nn.Conv2d(cur, config.channels, 3, padding=1))

    def forward(
        self, cond: torch.Tensor, noisy: torch.Tensor, sqrt_gamma: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        c0 = self.config.base_channels
        emb = self.noise_mlp(sinusoidal_embedding(sqrt_gamma, c0)) + self.scale_mlp(
            sinusoidal_embedding(torch.log(scale) / 10.0, c0)
        )
        h = self.inp(torch.cat([cond, noisy], dim=1))
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out(h)
