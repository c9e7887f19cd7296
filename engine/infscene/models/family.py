"""What a model family provides to the engine, so that no generic module needs to know which family it runs.

A family is one class, listed once in registry.py (as Deepness lists its model definitions): its config and
network classes, its share of a run's plan (the state grid, channels, reverse steps, finishing work, canvas
bytes and its own option checks), the step loop's denoiser, the finishing step from the sampled state to the
output canvas, the timing of its model calls, and its training objective and flags. The step loop, the
executors, the planner and the trainer are written against this class alone.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional, Protocol

import torch
from torch import nn

from ..diffusion.canvas import Canvas
from ..diffusion.fusion import FusionMode
from ..diffusion.grid import PatchGrid
from ..diffusion.loop import SamplingJob
from ..diffusion.schedule import Denoiser, ReverseStep
from ..training.trainer import Objective, TrainOptions
from ..modelformat.contract import ModelContract


@dataclass(frozen=True)
class FamilyPlan:
    """A family's decisions for one run, made while planning and carried out as they are."""

    grid: PatchGrid  # the state's grid: output pixels (SR3) or latent pixels (e2diffsr)
    reverse_steps: tuple[ReverseStep, ...]  # empty: no state is sampled, the finishing step works alone
    finishing_units: int  # work units of the finishing step per sample (decode tiles), counted in progress
    canvas_bytes: int  # scene-sized float32 maps of the family's sampling and finishing, without --samples' ones
    state_channels: int  # channels of the state the step loop denoises
    cond_factor: int  # output pixels per state pixel along a side: the condition is read on the grid times this
    detail: Optional[float] = None  # the share of invented detail the finishing step adds (None: a family without the choice)
    self_ensemble: bool = False  # the finishing step averages its decodes under the 8 symmetries of the square


Region = tuple[tuple[int, int], tuple[int, int]]  # ((row start, stop), (col start, stop)) of output pixels


@dataclass(frozen=True)
class SceneRequest:
    """What the planner hands a family: the user's sampling choices and the scene's geometry."""

    steps: Optional[int]  # None: the family's default
    mode: FusionMode
    detail: Optional[float]  # --detail: 0 faithful .. 1 detailed, None the model's default (families with the choice)
    lr_size: tuple[int, int]  # (rows, cols) of the input window the run samples (the extent and its context)
    out_size: tuple[int, int]  # (rows, cols) of that window's output
    patch: int  # output pixels
    overlap: int  # output pixels
    key_origin: tuple[int, int] = (0, 0)  # lattice index of the first patch (raster/anchor.py): the grid's noise keys
    kept: Optional[Region] = None  # the output pixels the run writes (the extent in its context); None: all of them
    self_ensemble: bool = False  # --self-ensemble (families that take it)


WARM_CALL_S = 0.5  # a first call at least this long is timed as it is: its one-time costs are lost in it


def seconds(call: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call: how a family times its model calls. A short first call (under WARM_CALL_S) carries the
    one-time costs of the first use (kernel choices, allocations), so it is repeated and the second is timed; a long
    one is not (a full decode tile took 2.5 s, and timing it twice was most of a dry run)."""
    first = _timed(call, device)
    return first if first >= WARM_CALL_S else _timed(call, device)


def _timed(call: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


class ModelFamily(Protocol):
    """One model family, as the engine and the trainer use it."""

    name: ClassVar[str]  # the `family` field of its configs
    config: ClassVar[type[ModelContract]]
    network: ClassVar[type[nn.Module]]

    def plan(self, config: ModelContract, request: SceneRequest) -> FamilyPlan:
        """The family's share of the run, or InfSceneError for a choice it cannot carry out."""
        ...

    def denoiser(self, model: nn.Module, scale: float, lr_consistency: bool, precision: str) -> Denoiser:
        """The step loop's denoiser for a loaded model of this family, its model calls in `precision` (precision.py)."""
        ...

    def finish(self, job: SamplingJob, config: ModelContract, state: Optional[Canvas], lr: object,
               out_size: tuple[int, int], lr_consistency: bool, detail: Optional[float], kept: Optional[Region],
               self_ensemble: bool) -> Canvas:
        """The output canvas (model units, on the job's condition grid) from the sampled state (None when the plan
        has no reverse step); `lr` is the window's visible bands as the executor shares them; `detail` and
        `self_ensemble` the plan's;
        only the `kept` pixels are written out, so a finishing step may leave the rest of its context unmade."""
        ...

    def unit_seconds(self, model: nn.Module, plan: FamilyPlan, scale: float, batch: int, precision: str) -> tuple[float, float]:
        """Seconds of one patch-step and of one finishing unit on the model's device in `precision`, for the run's estimate."""
        ...

    def objective(self, options: TrainOptions, config: ModelContract, device: torch.device) -> Objective:
        """What `infscene train` optimises for this family (and, where it has stages, options.stage)."""
        ...

    def add_train_flags(self, parser: argparse.ArgumentParser) -> None:
        """The family's own `infscene train` options."""
        ...

    def new_config(self, args: argparse.Namespace) -> ModelContract:
        """The config of a model trained from scratch with these `infscene train` arguments."""
        ...

