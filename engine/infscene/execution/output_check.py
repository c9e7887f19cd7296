"""No silent wrong output from a broken model: its output is checked where it is made.

A model folder with a valid safetensors header and random tensor bytes passes every check of the folder
(modelformat/check.py) and, before this, ran to the end and wrote an output that was 1 everywhere, with exit 0:
NaN from the network went through the step loop and was cast to the output's integers. Two checks,
each one line naming the model folder:

- every posterior mean the step loop gets is finite (`CheckedDenoiser`: one `isfinite` per batch, far
  cheaper than the model call it follows), so a model that breaks on some patch stops the run there;
- before the first step, the first batch of patches goes through the model at the last reverse step, where
  the posterior mean is the model's estimate of the image (`check_first_patches`): a model whose estimate is
  one constant over a patch whose input varies has no information to give, so the run stops before the
  hours of work it would waste.

Neither changes a healthy run's output: the probe's result is thrown away and reads no random state.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diffusion.executor import Executor
from ..diffusion.grid import PatchGrid
from ..diffusion.loop import PatchSource, read_cond
from ..diffusion.schedule import Denoiser, ReverseStep, patch_noise
from ..errors import InfSceneError

PROBE_KEY = 2**31 - 1  # the noise key of the probe's state: one no transition of a run uses


def non_finite_output(model_dir: str | Path) -> InfSceneError:
    return InfSceneError(f"the model in {model_dir} gives non-finite values (NaN or infinity) for this input: its weights "
                         "are damaged or are not a trained model's; check or replace the model folder")


class CheckedDenoiser:
    """A family's Denoiser whose every posterior mean is checked to be finite; anything else is the family's own."""

    def __init__(self, inner: Denoiser, model_dir: str) -> None:
        self.inner = inner
        self.model_dir = model_dir
        self.state_channels = inner.state_channels

    def posterior_mean(self, y_t: torch.Tensor, cond: torch.Tensor, step: ReverseStep) -> torch.Tensor:
        mu = self.inner.posterior_mean(y_t, cond, step)
        if not bool(torch.isfinite(mu).all()):
            raise non_finite_output(self.model_dir)
        return mu

    def __getattr__(self, name: str) -> Any:  # the family's finishing step reads its own denoiser's fields
        return getattr(self.inner, name)


@dataclass(frozen=True)
class LastStepProbe:
    """The posterior mean of a batch of patches at the last reverse step, from keyed noise: the model's estimate of
    the image there (a work item for Executor.map, so it runs wherever the run's model work runs)."""

    cond: PatchSource
    grid: PatchGrid
    step: ReverseStep
    channels: int
    cond_factor: int

    def __call__(self, denoiser: Denoiser, batch: list) -> tuple[np.ndarray, np.ndarray]:
        cond = read_cond(self.cond, batch, self.cond_factor)
        size = batch[0].size
        y = patch_noise(PROBE_KEY, self.step.index, *self.grid.noise_keys(batch), (self.channels, size, size))
        return denoiser.posterior_mean(y, cond, self.step).numpy(), cond.numpy()


def check_first_patches(executor: Executor, probe: LastStepProbe, batch_size: int, model_dir: str | Path) -> None:
    """Run the first batch of patches through the model at the last step; refuse a model whose estimate is not finite,
    or is one constant over a patch whose input is not."""
    first = next(iter(probe.grid.batches(batch_size)))
    mu, cond = next(iter(executor.map(probe, [first])))
    if not np.isfinite(mu).all():
        raise non_finite_output(model_dir)
    flat_mu, flat_cond = mu.reshape(len(mu), -1), cond.reshape(len(cond), -1)
    constant = (flat_mu.max(axis=1) == flat_mu.min(axis=1)) & (flat_cond.max(axis=1) > flat_cond.min(axis=1))
    if constant.any():
        raise InfSceneError(f"the model in {model_dir} gives one constant value over patches whose input varies: its "
                            "weights are damaged or are not a trained model's; check or replace the model folder")
