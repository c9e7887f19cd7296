"""The e2diffsr part of a run: the latent grid, and the tiled decode that finishes a sampled latent.

The plan's grid is the latent grid (1/8 of the output canvas); the condition is the bicubic upsampling
on the output canvas, as for SR3, and each latent patch reads the condition under it (the step loop's
`cond_factor`). The latent is sampled by the same step loop as SR3's pixels (same keyed
noise, VCF/average/independent, devices, cancel, progress), then decoded tile by tile (decode_scene), the
tiles spread over the same devices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ...diffusion.canvas import Canvas
from ...diffusion.grid import PatchGrid
from ...diffusion.loop import SamplingJob
from .decode import AxisSpan, SceneGeometry, core_side, decode_tile, tile_axes, tiles
from ..precision import autocast
from .denoiser import LatentPatchDenoiser
from ..family import Region
from .network import LATENT_FACTOR, E2DiffSR, E2DiffSRConfig


def latent_grid(height: int, width: int, patch: int, overlap: int, key_origin: tuple[int, int] = (0, 0)) -> PatchGrid:
    """The grid of latent patches for an output of height x width and output-pixel patch and overlap."""
    side, lap = patch // LATENT_FACTOR, overlap // LATENT_FACTOR
    rows, cols = -(-height // LATENT_FACTOR), -(-width // LATENT_FACTOR)
    return PatchGrid(max(rows, side), max(cols, side), side, lap, key_origin)


def decode_tile_count(config: E2DiffSRConfig, lr_size: tuple[int, int], out_size: tuple[int, int], grid: PatchGrid,
                      kept: Optional[Region] = None) -> int:
    """How many decode tiles a run has (known at planning time, so progress counts them)."""
    rows, cols = tile_axes(config, SceneGeometry(lr_size, out_size, (grid.height, grid.width)), kept=kept)
    return len(rows) * len(cols)


def typical_tile(model: E2DiffSR, scale: float, lr_size: Optional[tuple[int, int]] = None,
                 detail: Optional[float] = None) -> Callable[[], np.ndarray]:
    """A decode of a run's largest tile at `scale` and `detail` (default: the model's), for timing the run: of a scene
    of the run's LR size `lr_size`, at most 3 x 3 cores a side (whose centre tile has margins on every side, as most of
    a large run's tiles). A small run times a tile of its own size: a full tile took 5 of a dry run's 7 s on an 80 px
    input whose own tiles decode in a fraction of that."""
    most = 3 * core_side(scale)
    rows, cols = (min(side, most) for side in lr_size) if lr_size else (most, most)
    out = (round(rows * scale), round(cols * scale))
    geometry = SceneGeometry((rows, cols), out, (-(-out[0] // LATENT_FACTOR), -(-out[1] // LATENT_FACTOR)))
    largest = max(tiles(model.config, geometry), key=lambda tile: _region_pixels(*tile))
    lr = np.zeros((model.config.channels, rows, cols), dtype=np.float32)
    z = np.zeros((model.config.latent_channels, *geometry.latent_size), dtype=np.float32)
    if detail is None:
        detail = model.config.default_detail if model.texture is not None else 0.0
    return lambda: decode_tile(model, lr, lambda r, c: z[:, r, c], geometry, *largest, lr_consistency=True, detail=detail)


def _region_pixels(row: AxisSpan, col: AxisSpan) -> int:
    """Output pixels a tile decodes (its core's and the margins the texture head reads)."""
    return (row.region[1] - row.region[0]) * (col.region[1] - col.region[0])


@dataclass(frozen=True)
class DecodeTile:
    """The decode of one tile as executor work: picklable, the LR and the latent being arrays any worker can read."""

    lr: Any  # (C, h, w) model units: a numpy array here, a store array on Dask workers
    latent: Optional[Canvas]  # the sampled latent (diffusion units); None decodes from z = 0, the regression branch alone
    latent_gain: float  # diffusion units to the decoder's raw units: latent_scale, times the detail where it scales z
    geometry: SceneGeometry
    lr_consistency: bool
    detail: float  # the share of the texture head's drawing added (0 with no latent)

    def _raw_latent(self, rows: slice, cols: slice) -> np.ndarray:
        """The latent in the decoder's raw units (z * latent_gain)."""
        assert self.latent is not None
        return self.latent.data[:, rows, cols] * self.latent_gain

    def __call__(self, denoiser: LatentPatchDenoiser, tile: tuple[AxisSpan, AxisSpan]) -> np.ndarray:
        latent = None if self.latent is None else self._raw_latent
        with autocast(denoiser.device, denoiser.precision):
            return decode_tile(denoiser.model, self.lr, latent, self.geometry, tile[0], tile[1], self.lr_consistency, self.detail)


def decode_scene(job: SamplingJob, config: E2DiffSRConfig, latent: Optional[Canvas], lr: Any, out_size: tuple[int, int],
                 lr_consistency: bool, detail: float, kept: Optional[Region] = None) -> Canvas:
    """The output canvas (C, 8 grid.height, 8 grid.width), model units, of one seed, decoded tile by tile through
    the job's executor from the sampled latent (None: z = 0, the prior's mean, the regression branch alone), with
    that share (`detail`) of the texture head's drawing added (and, for a model whose config says
    detail_scales_latent, the latent scaled by that share toward z = 0).

    lr: the visible bands of the window, model units, as the executor shares them. kept: decode only the tiles
    under these output pixels (the rest of the canvas stays zero).
    """
    grid, executor, tracker = job.grid, job.executor, job.tracker
    geometry = SceneGeometry(lr.shape[-2:], out_size, (grid.height, grid.width))
    result = executor.make_canvas(config.channels, grid.height * LATENT_FACTOR, grid.width * LATENT_FACTOR, "result")
    work = DecodeTile(lr, latent, config.latent_scale * config.latent_share(detail), geometry, lr_consistency, detail)
    spans = list(tiles(config, geometry, kept=kept))
    for (row, col), values in zip(spans, executor.map(work, spans)):
        tracker.check_cancel()
        result.data[:, slice(*row.out), slice(*col.out)] = values
        tracker.advance(1)
    return result
