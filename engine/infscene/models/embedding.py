"""The scalar embedding the families' networks share: a noise level or a log-scale as sinusoids."""
from __future__ import annotations

import math

import torch


def sinusoidal_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Continuous positional encoding of a scalar per sample (noise level or log-scale)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=values.device) / half)
    args = values.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)
