"""The step loop: joint denoising of all patches of a canvas, fused at every reverse step.

A run is a sequence of transitions of the canvas state, each described as work per batch of
patches plus how the batches' pieces combine (executor.py):

- `InitialNoise`: the variance-corrected fusion of independent unit noises, N(0, 1) per pixel;
- `FusedStep` (`vcf`, `average`): every patch reads its window of the current state, the model
  gives its posterior mean mu, and the patch's fusion contribution (fusion.py) is summed into the
  next state;
- `IndependentChain` (`independent`, the seamful SR3 baseline): each tile of a non-overlapping
  grid runs its whole chain alone and is pasted.

The executor decides where the work runs; the loop decides what it is, and records each finished
transition with the run's checkpoint, so a run killed at step k continues from step k.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch

from ..progress import ProgressTracker
from .canvas import Canvas
from .executor import Combine, Executor, PatchWork
from .fusion import FusionMode, average_contribution, patch_weight, vcf_contribution, weight_windows
from .grid import Patch, PatchGrid
from .schedule import Denoiser, ReverseStep, Schedule, patch_noise


def _noise(grid: PatchGrid, seed: int, step: int, batch: list[Patch], channels: int) -> torch.Tensor:
    size = batch[0].size
    return patch_noise(seed, step, *grid.noise_keys(batch), (channels, size, size))


class PatchSource(Protocol):
    """A scene-sized map read patch by patch: the condition (raster.resample.Upsampled, computed where it is read)
    or a Canvas."""

    def read_batch(self, patches: list[Patch]) -> np.ndarray: ...


def read_cond(cond: PatchSource, batch: list[Patch], factor: int) -> torch.Tensor:
    """The condition under each patch of the batch (the patch scaled to the condition's grid by `factor`)."""
    return torch.from_numpy(cond.read_batch([Patch(p.row, p.col, p.y0 * factor, p.x0 * factor, p.size * factor) for p in batch]))


@dataclass(frozen=True)
class InitialNoise:
    """Each patch's share of the initial state: (w / S) times its keyed noise of step K."""

    grid: PatchGrid
    seed: int
    index: int  # K, the number of reverse steps: the noise key of the initial state
    channels: int
    combine: Combine = Combine.ADD

    def __call__(self, denoiser: Denoiser, batch: list[Patch]) -> np.ndarray:
        w = torch.from_numpy(patch_weight(self.grid.patch))
        _, root_sq = weight_windows(self.grid, batch)
        return ((w / torch.from_numpy(root_sq)) * _noise(self.grid, self.seed, self.index, batch, self.channels)).numpy()

    def units(self, batch: list[Patch]) -> int:
        return 0


@dataclass(frozen=True)
class FusedStep:
    """One reverse step of every patch, its (mu, sigma * noise) turned into its VCF or average contribution."""

    grid: PatchGrid
    state: Canvas
    cond: PatchSource
    step: ReverseStep
    seed: int
    mode: FusionMode
    cond_factor: int
    combine: Combine = Combine.ADD

    def __call__(self, denoiser: Denoiser, batch: list[Patch]) -> np.ndarray:
        y_t = torch.from_numpy(self.state.read_batch(batch))
        mu = denoiser.posterior_mean(y_t, read_cond(self.cond, batch, self.cond_factor), self.step)
        y = mu + self.step.sigma * _noise(self.grid, self.seed, self.step.index, batch, y_t.shape[1])
        totals, root_sq = (torch.from_numpy(a) for a in weight_windows(self.grid, batch))
        w = torch.from_numpy(patch_weight(self.grid.patch))
        if self.mode is FusionMode.VCF:
            return vcf_contribution(w, totals, root_sq, y, mu).numpy()
        return average_contribution(w, totals, y).numpy()

    def units(self, batch: list[Patch]) -> int:
        return len(batch)


@dataclass(frozen=True)
class IndependentChain:
    """Every reverse step of each tile on its own, from its own keyed noise: the tile's sample."""

    grid: PatchGrid
    cond: PatchSource
    steps: tuple[ReverseStep, ...]
    seed: int
    channels: int
    cond_factor: int
    combine: Combine = Combine.PASTE

    def __call__(self, denoiser: Denoiser, batch: list[Patch]) -> np.ndarray:
        cond = read_cond(self.cond, batch, self.cond_factor)
        y = Schedule.run_chain(lambda y_t, step: denoiser.posterior_mean(y_t, cond, step),
                               _noise(self.grid, self.seed, len(self.steps), batch, self.channels), self.steps,
                               lambda step: _noise(self.grid, self.seed, step.index, batch, self.channels))
        return y.numpy()

    def units(self, batch: list[Patch]) -> int:
        return len(batch) * len(self.steps)


class StateCheckpoint(Protocol):
    """Where the step loop records finished transitions (checkpoint.py), and finds them again on resume."""

    def restore(self, states: Sequence[Canvas]) -> int:
        """How many transitions are already done; their result is put in states[done % len(states)]."""
        ...

    def commit(self, done: int, state: Canvas) -> None:
        """Record that `done` transitions are finished and `state` holds their result."""
        ...


class NoCheckpoint:
    """A run that keeps nothing for resuming (a library call on canvases of its own, a test)."""

    def restore(self, states: Sequence[Canvas]) -> int:
        return 0

    def commit(self, done: int, state: Canvas) -> None:
        pass


@dataclass(frozen=True)
class SamplingJob:
    """What every mode needs: the condition, the grid, where the work runs, the steps, the noise key and the bookkeeping."""

    cond: PatchSource
    grid: PatchGrid
    executor: Executor
    steps: list[ReverseStep]
    seed: int
    batch_size: int
    tracker: ProgressTracker
    cond_factor: int = 1  # condition pixels per state pixel (the family plan's cond_factor)
    checkpoint: StateCheckpoint = NoCheckpoint()

    @property
    def channels(self) -> int:
        """Channels of the state being denoised (the family plan's state_channels)."""
        return self.executor.state_channels

    @property
    def batches(self) -> list[list[Patch]]:
        """The grid's fixed batches: the same patches go through the model together wherever they run."""
        return list(self.grid.batches(self.batch_size))

    def state_canvas(self, name: str) -> Canvas:
        """A state canvas, chunked by the patch: a patch's window spans at most 2 x 2 chunks."""
        return self.executor.make_canvas(self.channels, self.grid.height, self.grid.width, name, chunk=self.grid.patch)


def _run(job: SamplingJob, transitions: Sequence[PatchWork], states: Sequence[Canvas]) -> Canvas:
    """Carry out the transitions not yet done (per the checkpoint); returns the canvas holding the last state."""
    done = job.checkpoint.restore(states)
    batches = job.batches
    job.tracker.skip(sum(work.units(batch) for work in transitions[:done] for batch in batches))
    for i in range(done, len(transitions)):
        target = states[(i + 1) % len(states)]
        job.executor.fuse(transitions[i], batches, target, job.tracker)
        if transitions[i].units(batches[0]):  # the initial noise is cheaper to redo than to save
            job.checkpoint.commit(i + 1, target)
    return states[len(transitions) % len(states)]


def sample_joint(job: SamplingJob, mode: FusionMode) -> Canvas:
    """Run the K-step reverse chain over the whole canvas with `vcf` or `average` fusion."""
    states = [job.state_canvas("state0"), job.state_canvas("state1")]
    transitions: list[PatchWork] = [InitialNoise(job.grid, job.seed, len(job.steps), job.channels)]
    for i, step in enumerate(job.steps):  # transition i + 1 reads the state that transition i wrote
        transitions.append(FusedStep(job.grid, states[(i + 1) % 2], job.cond, step, job.seed, mode, job.cond_factor))
    return _run(job, transitions, states)


def sample_independent(job: SamplingJob) -> Canvas:
    """Sample each tile's chain on its own and paste the results (no fusion at all)."""
    chain = IndependentChain(job.grid, job.cond, tuple(job.steps), job.seed, job.channels, job.cond_factor)
    return _run(job, [chain], [job.state_canvas("state0")])


def sample_canvas(job: SamplingJob, mode: FusionMode) -> Canvas:
    """Super-resolve the whole canvas in the chosen fusion mode; returns the y_0 canvas."""
    if mode is FusionMode.INDEPENDENT:
        return sample_independent(job)
    return sample_joint(job, mode)
