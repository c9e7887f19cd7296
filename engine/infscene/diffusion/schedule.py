"""The noise schedule and everything it decides: respacing, noising, the reverse step and the chain loop.

One `Schedule` serves sampling and training alike (as improved-diffusion's GaussianDiffusion does), so the
respaced steps the engine samples with, the noisy inputs a family trains on and every whole reverse chain
(a tile of the independent mode, SR3's training preview, e2diffsr's training chain) are written once.

The paper's schedule is linear in beta from 1e-6 to 1e-2 over T = 2000 steps. Sampling all
2000 steps per patch takes hours per scene, so the reverse chain runs on K <= T evenly spaced
steps with the exact posterior q(y_{t-1} | y_t, y_0) of the respaced chain (as in
improved-diffusion). A family's Denoiser returns each patch's posterior mean mu; the step's std
sigma is the schedule's, and the fusion module turns (mu, sigma * noise) into canvas contributions.

Noise is keyed by (seed, step, patch grid position) and never by processing order, so the
output does not depend on batch size, patch order or the number of workers, and overlapping
patches draw independent noise as Eq. 7 of the paper assumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import numpy as np
import torch

PAPER_T = 2000
PAPER_BETA_START = 1e-6
PAPER_BETA_END = 1e-2


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

    def level(self, batch: int, device: torch.device) -> torch.Tensor:
        """sqrt(gamma) for each of `batch` examples: the noise level the networks are told."""
        return torch.full((batch,), float(np.sqrt(self.gamma)), device=device)

    def x0_from_eps(self, y_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The clean estimate that a noise estimate `eps` implies: q(y_t | y_0) solved for y_0."""
        return (y_t - np.sqrt(1.0 - self.gamma) * eps) / np.sqrt(self.gamma)

    def posterior_mean(self, x0: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        """mu of q(y_{t_prev} | y_t, y_0 = x0): what a family's Denoiser returns, from its estimate of x0."""
        return self.coef_x0 * x0 + self.coef_xt * y_t


MeanFn = Callable[[torch.Tensor, ReverseStep], torch.Tensor]  # (y_t, step) -> the step's posterior mean
NoiseFn = Callable[[ReverseStep], Optional[torch.Tensor]]  # step -> its unit noise (None: the step adds none)


class Schedule:
    """A diffusion's cumulative noise levels gamma_1..gamma_T, and what is derived from them for sampling and training."""

    def __init__(self, gammas: np.ndarray) -> None:
        self.gammas = gammas
        # sqrt(gamma_0 = 1), sqrt(gamma_1) .. sqrt(gamma_T): the bounds of the continuous training levels
        self._sqrt_levels = torch.from_numpy(np.sqrt(np.concatenate([[1.0], gammas]))).float()

    @classmethod
    def paper(cls) -> Schedule:
        """The InfScene paper's (and SR3's): linear beta from 1e-6 to 1e-2 over T = 2000."""
        return cls(linear_gammas())

    def respaced(self, steps: int) -> list[ReverseStep]:
        """The K reverse steps, noisiest first, on K timesteps evenly spaced over 1..T."""
        total = len(self.gammas)
        if not 1 <= steps <= total:
            raise ValueError(f"steps must be between 1 and {total}, got {steps}")
        timesteps = np.unique(np.round(np.linspace(0, total - 1, steps)).astype(int))
        chosen = self.gammas[timesteps]
        result = []
        for k in range(len(timesteps) - 1, -1, -1):
            gamma = float(chosen[k])
            gamma_prev = float(chosen[k - 1]) if k > 0 else 1.0
            beta = 1.0 - gamma / gamma_prev
            result.append(ReverseStep(k, gamma, gamma_prev, beta * (1.0 - gamma_prev) / (1.0 - gamma)))
        return result

    def training_level(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """SR3's continuous noise level per example: sqrt(gamma) uniform between sqrt(gamma_{t-1}) and sqrt(gamma_t)
        for t uniform in 1..T, so a model is not tied to one discretisation and may sample with any K."""
        t = torch.randint(1, len(self._sqrt_levels), (batch,), generator=generator)
        low, high = self._sqrt_levels[t], self._sqrt_levels[t - 1]
        return low + (high - low) * torch.rand(batch, generator=generator)

    @staticmethod
    def q_sample(x0: torch.Tensor, sqrt_gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of q(y_t | y_0 = x0) = N(sqrt(gamma) x0, (1 - gamma) I) for a batch, one level per example."""
        sg = sqrt_gamma[:, None, None, None]
        return sg * x0 + torch.sqrt(1.0 - sg**2) * noise

    @staticmethod
    def run_chain(posterior_mean: MeanFn, y: torch.Tensor, steps: Sequence[ReverseStep], noise: NoiseFn) -> torch.Tensor:
        """The reverse chain from y_T = `y`: each step's posterior mean plus sigma times that step's noise.

        The caller says where the noise comes from (keyed by position in the engine, a generator in training), so
        one loop serves every whole chain; the engine's fused steps run one step of it per transition (loop.py).
        """
        for step in steps:
            mu = posterior_mean(y, step)
            unit = noise(step)
            y = mu if unit is None else mu + step.sigma * unit
        return y


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


class Denoiser(Protocol):
    """What the step loop needs of a model family: the posterior mean of one reverse step for a patch batch.

    y_t: (B, state_channels, p, p) patches of the current state; cond: the same patches of the
    condition canvas. The caller adds sigma * noise and does the fusion, so every family is fused,
    keyed, spread over devices and cancelled the same way.
    """

    state_channels: int

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor: ...
