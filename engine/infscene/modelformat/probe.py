"""The probe: a model run on a small real image, to tell a model that super-resolves from weights that only have its
shapes (issue 35: finite random weights behind a valid header ran to exit 0 and wrote noise).

The probe image is a 64 x 64 crop of the bundled Planet sample (resources/sample, rows 8-72, columns 16-80; uint8 RGB,
no nodata), shipped inside the package so an installed engine finds it. It is area-downsampled by the probe scale
(PROBE_SCALES: 4 where the model's trained range holds it) and the model super-resolves it back to 64 x 64, on the
CPU in float32 on one thread with keyed noise, so the output depends on the weights and the config alone. The
baseline is the bicubic upsampling of that input projected exactly onto it (every block's mean set to its input
pixel): what any super-resolution starts from, so the output minus the baseline is the detail the model adds. Taken:

- `distance`: the RMS of that detail (the output clamped to [-1, 1], as it is written), in model units;
- `agreement`: its correlation with the image's own detail (the crop minus the same baseline), which the probe knows;
- `block_error`: the output's block means against the input, where the family projects exactly (e2diffsr).

A model's card records the first two (card.py). Measured on the shipped models and on random weights drawn with each
tensor's own mean and spread: SR3's distance is 0.070 trained, 0.60-0.67 random (4 draws); e2diffsr's is 0.066
trained but 0.034-0.082 random (20 draws), and there agreement tells them apart: 0.34 trained, within 0.024 of 0
random (SR3's is 0.048 trained). On the sample's own pixels, not downsampled, e2diffsr's trained and random distances
were closer still (3.2 and 3.4 DN on a 16-pixel crop).

Each family brings its own run (register_probe, called from its package's __init__, so whoever holds one of its
networks can save it with its card): the reverse chain and the finishing step of a run, shortened where a run is long.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion.schedule import patch_noise
from .contract import ModelContract

PROBE_IMAGE = Path(__file__).with_name("probe_planet_brentwood_64px.npy")
PROBE_SCALES = (4, 2, 8)  # the first in the model's trained range is used: integer factors of the image's 64 pixels
PROBE_SEED = 35  # the probe's noise key (diffusion.schedule.patch_noise), one per chain step
PROBE_CHANNELS = 3  # the image's bands (RGB): a model of other bands is not probed (the engine drives RGB models)

# (model on the CPU in eval mode, input (1, 3, h, w) in model units, integer scale) -> output (1, 3, h * scale, w * scale)
ProbeRun = Callable[[nn.Module, torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class FamilyProbe:
    """A family's probe run, and whether its output's block means equal the input exactly (its own projection)."""

    run: ProbeRun
    projects: bool


PROBES: dict[str, FamilyProbe] = {}


def register_probe(family: str, run: ProbeRun, projects: bool) -> None:
    """Make `run` the probe of the models whose config names `family`."""
    PROBES[family] = FamilyProbe(run, projects)


@dataclass(frozen=True)
class ProbeResult:
    """What the probe measured of one model's output, in model units."""

    scale: int
    finite: bool
    distance: float = float("nan")  # RMS of the output (clamped to [-1, 1]) minus the baseline: the detail the model adds
    agreement: float = float("nan")  # correlation of that detail with the probe image's own (the image minus the baseline)
    detail: float = float("nan")  # RMS of the probe image's own detail: what the image really holds
    block_error: Optional[float] = None  # largest |output block mean - input pixel|; None: a family that does not project


def probe_scale(config: ModelContract) -> Optional[int]:
    """The scale a model is probed at: the first of PROBE_SCALES in its trained range; None when none is, or when it
    reads other bands than the probe image's."""
    if config.channels != PROBE_CHANNELS:
        return None
    return next((s for s in PROBE_SCALES if config.scale_min <= s <= config.scale_max), None)


def probe_noise(step: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The standard normal noise of a probe chain's step (`step` the chain index; K for the initial state), (1, *shape)."""
    return patch_noise(PROBE_SEED, step, [0], [0], shape)


def probe_truth() -> torch.Tensor:
    """The probe image (1, 3, 64, 64) in model units ([0, 255] onto [-1, 1])."""
    pixels = np.load(PROBE_IMAGE, allow_pickle=False)
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)[None]


def project(output: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """`output` with every scale x scale block's mean set to its pixel of `lr`."""
    return output + F.interpolate(lr - F.avg_pool2d(output, scale), scale_factor=scale, mode="nearest")


def rms(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean().sqrt())


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """The correlation of two detail maps, whose means are 0 (each block's mean is 0 after the projection): their
    cosine, 0 where either is all zero."""
    a, b = a.flatten().double(), b.flatten().double()
    norms = float(a.norm() * b.norm())
    return float(a @ b) / norms if norms else 0.0


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch's intra-op threads set to one for the duration, then restored: the probe's distance is then the same
    bits on any machine whatever its thread count (as execution/determinism.py's one_thread_per_call does for a
    run's calls, a layer above this one), and on a loaded CPU a short chain on two threads took 3-12 s, not 0.4 s."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def run_probe(model: nn.Module, scale: int) -> ProbeResult:
    """The probe at `scale` through a model on the CPU (float32, eval mode) of a family that registered its run."""
    family = PROBES[model.config.family]
    truth = probe_truth()
    lr = F.avg_pool2d(truth, scale)
    baseline = project(F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False), lr, scale)
    with one_thread():
        output = family.run(model, lr, scale).float()
    if not bool(torch.isfinite(output).all()):
        return ProbeResult(scale, finite=False)
    added, real = output.clamp(-1.0, 1.0) - baseline, truth - baseline
    block_error = float((F.avg_pool2d(output, scale) - lr).abs().max()) if family.projects else None
    return ProbeResult(scale, True, rms(added), correlation(added, real), rms(real), block_error)
