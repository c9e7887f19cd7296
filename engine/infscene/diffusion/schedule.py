"""Noise schedule and the per-patch reverse diffusion step (respaced stochastic DDPM).

The paper's schedule is linear in beta from 1e-6 to 1e-2 over T = 2000 steps. Sampling all
2000 steps per patch takes hours per scene, so the reverse chain runs on K <= T evenly spaced
steps with the exact posterior q(y_{t-1} | y_t, y_0) of the respaced chain (as in
improved-diffusion). Each step returns the patch's posterior mean mu and its std sigma; the
fusion module turns (mu, sigma * noise) into canvas contributions.

Noise is keyed by (seed, step, patch grid position) and never by processing order, so the
output does not depend on batch size, patch order or the number of workers, and overlapping
patches draw independent noise as Eq. 7 of the paper assumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from ..models.sr3.network import SR3UNet

PAPER_T = 2000
PAPER_BETA_START = 1e-6
PAPER_BETA_END = 1e-2
DEFAULT_STEPS = 50


def linear_gammas(t: int = PAPER_T, beta_start: float = PAPER_BETA_START, beta_end: float = PAPER_BETA_END) -> np.ndarray:
    """Cumulative products gamma_t = prod(1 - beta_i), t = 1..T, in float64."""
    return np.cumprod(1.0 - np.linspace(beta_start, beta_end, t, dtype=np.float64))


@dataclass(frozen=True)
class ReverseStep:
    """Coefficients of one step of the respaced reverse chain, from t to t_prev."""

    index: int  # position in the K-step chain, K-1 (noisiest) .. 0
    gamma: float  # gamma at t
    gamma_prev: float  # gamma at t_prev (1.0 after the last step)
    posterior_var: float

    @property
    def sigma(self) -> float:
        return float(np.sqrt(self.posterior_var))

    @property
    def coef_x0(self) -> float:
        beta = 1.0 - self.gamma / self.gamma_prev
        return float(np.sqrt(self.gamma_prev) * beta / (1.0 - self.gamma))

    @property
    def coef_xt(self) -> float:
        alpha = self.gamma / self.gamma_prev
        return float(np.sqrt(alpha) * (1.0 - self.gamma_prev) / (1.0 - self.gamma))


def respaced_steps(steps: int, gammas: np.ndarray | None = None) -> list[ReverseStep]:
    """The K reverse steps, noisiest first, on K timesteps evenly spaced over 1..T."""
    gammas = linear_gammas() if gammas is None else gammas
    total = len(gammas)
    if not 1 <= steps <= total:
        raise ValueError(f"steps must be between 1 and {total}, got {steps}")
    timesteps = np.unique(np.round(np.linspace(0, total - 1, steps)).astype(int))
    chosen = gammas[timesteps]
    result = []
    for k in range(len(timesteps) - 1, -1, -1):
        gamma = float(chosen[k])
        gamma_prev = float(chosen[k - 1]) if k > 0 else 1.0
        beta = 1.0 - gamma / gamma_prev
        result.append(ReverseStep(k, gamma, gamma_prev, beta * (1.0 - gamma_prev) / (1.0 - gamma)))
    return result


def patch_noise(seed: int, step: int, rows: list[int], cols: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise for a batch of patches, each keyed by (seed, step, row, col).

    `step` is the chain index (K for the initial state). The same key always gives the same
    noise, whichever batch the patch falls in.
    """
    out = torch.empty((len(rows), *shape))
    for i, (row, col) in enumerate(zip(rows, cols)):
        key = np.random.SeedSequence([seed, step, row, col]).generate_state(2, dtype=np.uint32)
        gen = torch.Generator().manual_seed(int(key[0]) << 32 | int(key[1]))
        out[i] = torch.randn(shape, generator=gen)
    return out


def low_frequencies(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The part of x that the low-resolution sensor sees: area-downsample by `scale`, bicubic back."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h / scale)), max(1, round(w / scale))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)


class Denoiser(Protocol):
    """What the step loop needs of a model family: the posterior mean of one reverse step for a patch batch.

    y_t: (B, state_channels, p, p) patches of the current state; cond: the same patches of the
    condition canvas. The caller adds sigma * noise and does the fusion, so every family is fused,
    keyed, spread over devices and cancelled the same way.
    """

    state_channels: int

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor: ...


class PatchDenoiser:
    """SR3's Denoiser: runs the U-Net on a batch of patches and returns the posterior mean of the reverse step.

    With `lr_consistency`, the low frequencies of each step's x0 estimate are replaced by those
    of the conditioning image (x0 - L(x0) + L(cond)), which stops the colour and brightness
    drift of SR3 outputs away from the measured input. It acts inside each patch's mean, so the
    variance-corrected fusion of the means stays exact.
    """

    def __init__(self, model: SR3UNet, scale: float, lr_consistency: bool = True) -> None:
        self.model = model
        self.scale = scale
        self.lr_consistency = lr_consistency
        self.device = next(model.parameters()).device
        self.state_channels = model.config.channels

    @torch.no_grad()
    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        y_t, cond = y_t.to(self.device), cond.to(self.device)
        batch = y_t.shape[0]
        sqrt_gamma = torch.full((batch,), float(np.sqrt(step.gamma)), device=self.device)
        scale = torch.full((batch,), float(self.scale), device=self.device)
        eps = self.model(cond, y_t, sqrt_gamma, scale).float()
        x0 = (y_t - np.sqrt(1.0 - step.gamma) * eps) / np.sqrt(step.gamma)
        x0 = x0.clamp(-1.0, 1.0)
        if self.lr_consistency:
            x0 = x0 - low_frequencies(x0, self.scale) + low_frequencies(cond, self.scale)
        return (step.coef_x0 * x0 + step.coef_xt * y_t).cpu()
