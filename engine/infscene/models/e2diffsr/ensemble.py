"""Test-time self-ensemble of the regression branch (detail 0): the scene decoded under the 8 symmetries of the square
(identity, flips, transposes, rotations), each decode turned back, the 8 averaged, then made LR-consistent once.

The whole scene is transformed, not each tile: a transformed scene is a scene like any other (its LR window read
through `TransformedLR`, its geometry with the sides swapped under a transpose), so its tiles decode exactly as its
whole-scene pass would (decode.py), and each is turned back and added where it lies in the output. The decodes are
raw (no LR-consistency); the exact block-mean projection (decode.project_block_means) runs once on their mean, tile
by tile in the scene's own frame. Projecting each decode in its own frame would not do: where an output pixel's
centre lies exactly on an LR border (scales whose reduced ratio out/lr has an even denominator: 2.5x; 118 x 115 px from
32 px), `owner` gives it to the next LR pixel, so after a flip it belongs to the block on its other side, and the
mean of 8 decodes consistent with 8 different partitions is consistent with none. Projected once, every block mean
is the input's to the last digit at every scale (at the other scales the two ways agree: the projection is affine).

Memory: one extra canvas holds the sum of the 8 raw decodes over the kept tiles' output pixels, never 8 canvases.
Cost: 8 decodes of those tiles (each tile of a transformed scene counts as one unit of progress; cancel is checked
between tiles), then the projection, a few matrix products per tile.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ...diffusion.canvas import Canvas
from ...diffusion.loop import SamplingJob
from ..family import Region
from ..precision import autocast
from .decode import AxisSpan, SceneGeometry, decode_tile, project_tile, tile_axes, tiles
from .denoiser import LatentPatchDenoiser
from .network import LATENT_FACTOR, E2DiffSRConfig

Span = tuple[int, int]


def mirrored(span: Span, length: int) -> Span:
    """The span of an axis of `length` pixels read backwards."""
    return length - span[1], length - span[0]


@dataclass(frozen=True)
class Symmetry:
    """One of the 8 symmetries of the square as a scene is decoded under it: transposed (rows and columns swapped) or
    not, then its rows and its columns read backwards or not."""

    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (rows, cols) of a scene of `size` under this symmetry."""
        return (size[1], size[0]) if self.transpose else size

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x (..., rows, cols) under this symmetry (a view)."""
        if self.transpose:
            x = x.swapaxes(-1, -2)
        if self.flip_rows:
            x = x[..., ::-1, :]
        return x[..., ::-1] if self.flip_cols else x

    def undo(self, y: np.ndarray) -> np.ndarray:
        """The inverse of `apply` (a view)."""
        if self.flip_rows:
            y = y[..., ::-1, :]
        if self.flip_cols:
            y = y[..., ::-1]
        return y.swapaxes(-1, -2) if self.transpose else y

    def source(self, rows: Span, cols: Span, size: tuple[int, int]) -> tuple[Span, Span]:
        """The (rows, cols) of the scene of `size` that the spans `rows` x `cols` of the transformed scene show."""
        height, width = self.size(size)
        rows = mirrored(rows, height) if self.flip_rows else rows
        cols = mirrored(cols, width) if self.flip_cols else cols
        return (cols, rows) if self.transpose else (rows, cols)

    def region(self, region: Region, size: tuple[int, int]) -> Region:
        """The spans of the transformed scene that show `region` of the scene of `size` (the inverse of `source`)."""
        rows, cols = (region[1], region[0]) if self.transpose else region
        height, width = self.size(size)
        return (mirrored(rows, height) if self.flip_rows else rows), (mirrored(cols, width) if self.flip_cols else cols)


SYMMETRIES = tuple(Symmetry(transpose, flip_rows, flip_cols)
                   for transpose in (False, True) for flip_rows in (False, True) for flip_cols in (False, True))


@dataclass(frozen=True)
class TransformedLR:
    """The LR window under a symmetry, read as decode_tile reads an LR array (lr[:, rows, cols]): each read takes the
    window's own pixels under it (a numpy array, or a store array on Dask workers) and transforms them."""

    lr: Any
    symmetry: Symmetry

    def __getitem__(self, index: tuple[slice, slice, slice]) -> np.ndarray:
        channels, rows, cols = index
        height, width = self.lr.shape[-2:]
        source_rows, source_cols = self.symmetry.source((rows.start, rows.stop), (cols.start, cols.stop), (height, width))
        return self.symmetry.apply(np.asarray(self.lr[channels, slice(*source_rows), slice(*source_cols)]))


@dataclass(frozen=True)
class FrameDecode:
    """The raw decode (regression branch, no LR-consistency) of one tile of the scene under a symmetry, turned back
    to the scene's frame: executor work, picklable."""

    lr: Any  # the untransformed window (C, h, w), as the executor shares it
    symmetry: Symmetry
    geometry: SceneGeometry  # of the transformed scene

    def __call__(self, denoiser: LatentPatchDenoiser, tile: tuple[AxisSpan, AxisSpan]) -> np.ndarray:
        with autocast(denoiser.device, denoiser.precision):
            decoded = decode_tile(denoiser.model, TransformedLR(self.lr, self.symmetry), None, self.geometry, tile[0], tile[1], lr_consistency=False)
        return np.ascontiguousarray(self.symmetry.undo(decoded))


@dataclass(frozen=True)
class ProjectTile:
    """One tile of the scene's output: the mean of the 8 raw decodes, LR-consistent (each block moved by its mean
    residual, as decode_tile does) unless the run turned that off. Executor work."""

    total: Canvas  # the sum of the 8 raw decodes over `region`
    region: Region  # where `total` lies in the scene's output
    lr: Any  # the window (C, h, w)
    geometry: SceneGeometry
    lr_consistency: bool

    def __call__(self, denoiser: LatentPatchDenoiser, tile: tuple[AxisSpan, AxisSpan]) -> np.ndarray:
        row, col = tile
        (top, _), (left, _) = self.region
        total = self.total.data[:, row.out[0] - top: row.out[1] - top, col.out[0] - left: col.out[1] - left]
        mean = np.asarray(total, dtype=np.float32) / len(SYMMETRIES)
        if not self.lr_consistency:
            return mean
        core = np.ascontiguousarray(self.lr[:, slice(*row.core), slice(*col.core)], dtype=np.float32)
        return project_tile(torch.from_numpy(mean), torch.from_numpy(core), self.geometry, row, col).numpy()


def decoded_region(config: E2DiffSRConfig, geometry: SceneGeometry, kept: Optional[Region]) -> Region:
    """The output pixels of the tiles under the kept pixels (the whole scene without `kept`)."""
    rows, cols = tile_axes(config, geometry, kept=kept)
    return (rows[0].out[0], rows[-1].out[1]), (cols[0].out[0], cols[-1].out[1])


def frame_geometry(geometry: SceneGeometry, symmetry: Symmetry) -> SceneGeometry:
    """The scene under a symmetry: its LR window, output and latent grid with the sides swapped under a transpose
    (what a run of the transformed raster would plan)."""
    return SceneGeometry(symmetry.size(geometry.lr_size), symmetry.size(geometry.out_size), symmetry.size(geometry.latent_size))


def frame_tiles(config: E2DiffSRConfig, geometry: SceneGeometry, symmetry: Symmetry, region: Region) -> list[tuple[AxisSpan, AxisSpan]]:
    """The tiles of the scene under a symmetry that decode `region` of the scene."""
    return list(tiles(config, frame_geometry(geometry, symmetry), kept=symmetry.region(region, geometry.out_size)))


def ensemble_tile_count(config: E2DiffSRConfig, geometry: SceneGeometry, kept: Optional[Region]) -> int:
    """How many decode tiles the 8 decodes have together (known at planning time, so progress counts them)."""
    region = decoded_region(config, geometry, kept)
    total = 0
    for symmetry in SYMMETRIES:
        rows, cols = tile_axes(config, frame_geometry(geometry, symmetry), kept=symmetry.region(region, geometry.out_size))
        total += len(rows) * len(cols)
    return total


def ensemble_canvas_bytes(config: E2DiffSRConfig, geometry: SceneGeometry, kept: Optional[Region]) -> int:
    """The float32 canvas of the decodes' sum over the decoded region."""
    (top, bottom), (left, right) = decoded_region(config, geometry, kept)
    return 4 * config.channels * (bottom - top) * (right - left)


def decode_ensemble(job: SamplingJob, config: E2DiffSRConfig, lr: Any, out_size: tuple[int, int],
                    kept: Optional[Region] = None, lr_consistency: bool = True) -> Canvas:
    """The output canvas (C, 8 grid.height, 8 grid.width), model units: the mean of the regression branch's decodes
    of the scene under the 8 symmetries, LR-consistent (the block-mean projection, in the scene's frame) unless
    lr_consistency is off. kept: as run.decode_scene (the tiles under these output pixels; the rest of the canvas
    stays zero)."""
    grid, executor, tracker = job.grid, job.executor, job.tracker
    geometry = SceneGeometry(lr.shape[-2:], out_size, (grid.height, grid.width))
    region = decoded_region(config, geometry, kept)
    (top, bottom), (left, right) = region
    total = executor.make_canvas(config.channels, bottom - top, right - left, "ensemble")
    for index, symmetry in enumerate(SYMMETRIES):
        spans = frame_tiles(config, geometry, symmetry, region)
        for (row, col), values in zip(spans, executor.map(FrameDecode(lr, symmetry, frame_geometry(geometry, symmetry)), spans)):
            tracker.check_cancel()
            _add(total, region, symmetry.source(row.out, col.out, geometry.out_size), values, first=index == 0)
            tracker.advance(1)
    result = executor.make_canvas(config.channels, grid.height * LATENT_FACTOR, grid.width * LATENT_FACTOR, "result")
    spans = list(tiles(config, geometry, kept=kept))
    for (row, col), values in zip(spans, executor.map(ProjectTile(total, region, lr, geometry, lr_consistency), spans)):
        tracker.check_cancel()
        result.data[:, slice(*row.out), slice(*col.out)] = values
    return result



def _add(total: Canvas, region: Region, at: tuple[Span, Span], values: np.ndarray, first: bool) -> None:
    """Add (or, for the first decode, write) the part of a tile's values (C, rows, cols, lying at `at` in the scene's
    output) that falls in `region` into `total` (which holds `region`). Every pixel of the region is in exactly one
    tile of each decode, so writing the first decode's needs no zeroed canvas (a store reopened on resume has its
    old values)."""
    inside = []
    for (start, stop), (low, high) in zip(at, region):
        a, b = max(start, low), min(stop, high)
        if a >= b:
            return
        inside.append((slice(a - start, b - start), slice(a - low, b - low)))
    (rows, to_rows), (cols, to_cols) = inside
    if first:
        total.data[:, to_rows, to_cols] = values[:, rows, cols]
    else:
        total.data[:, to_rows, to_cols] += values[:, rows, cols]
