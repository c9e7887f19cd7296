"""Decoding a scene of any size tile by tile, each tile equal to what a whole-scene pass would give.

The decoder (prior decoder + regression branch + continuous upsampler) has no normalisation layer and
reads every map at positions computed from the global geometry, so an output pixel depends only on
the low-resolution pixels and latent pixels within a fixed reach. A tile is decoded from its core
of low-resolution pixels plus a margin of that reach (`decode_margin_lr`), and only the output
pixels that belong to the core are kept: the scene decodes in bounded memory and, up to float
rounding, exactly as one pass would.

LR-consistency is an exact projection of the output onto the images whose block means equal the
input: each output pixel belongs to the low-resolution pixel its centre falls in (as the engine's
nearest_source), and the mean residual of each block is subtracted from its pixels. The projection
needs only the core's own pixels, so it is exact per tile too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from .network import (
    LATENT_FACTOR,
    PRIOR_RADIUS_LATENT,
    ContinuousUpsampler,
    E2DiffSR,
    E2DiffSRConfig,
    Sampling,
    TextureHead,
    centres,
    decode_margin_lr,
)

DECODE_TILE_OUTPUT_PX = 1024  # output pixels along a tile's core side: bounded memory, modest margin overhead
MIN_CORE_LR_PX = 16
MIN_DECODE_TILES = 2  # tiles a small region is cut in: a 2-core CPU's two lanes then both decode
UPSAMPLE_REACH_LR = ContinuousUpsampler.radius_lr + 2  # + the bicubic base's 2 pixels


@dataclass(frozen=True)
class AxisSpan:
    """One tile's extent along one axis, on the three grids it touches."""

    core: tuple[int, int]  # low-resolution pixels whose output the tile writes
    lr: tuple[int, int]  # low-resolution pixels it reads (core + margin, within the scene)
    out: tuple[int, int]  # output pixels whose centre falls in the core
    latent: tuple[int, int]  # latent pixels it reads
    region: tuple[int, int]  # output pixels decoded: out, widened by what the texture head reads, on latent-grid bounds
    region_lr: tuple[int, int]  # low-resolution pixels the region's centres fall in

    def upsampled(self) -> slice:
        """The part of the read LR span (relative to it) that upsampling the region's output pixels reads."""
        start = max(self.lr[0], self.region_lr[0] - UPSAMPLE_REACH_LR)
        stop = min(self.lr[1], self.region_lr[1] + UPSAMPLE_REACH_LR)
        return slice(start - self.lr[0], stop - self.lr[0])

    def kept(self) -> slice:
        """The output pixels of the core within the decoded region."""
        return slice(self.out[0] - self.region[0], self.out[1] - self.region[0])

    def lr_centres_out(self, out_per_lr: float) -> torch.Tensor:
        return centres(*self.lr, out_per_lr, origin=LATENT_FACTOR * self.latent[0])

    def out_centres_lr(self, lr_per_out: float) -> torch.Tensor:
        return centres(*self.region, lr_per_out, origin=self.lr[0])


def owner(lr_len: int, out_len: int, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
    """For each output pixel (of start:stop), the low-resolution pixel its centre falls in (exact integer arithmetic)."""
    return ((2 * np.arange(start, out_len if stop is None else stop) + 1) * lr_len) // (2 * out_len)


def first_owned(lr_len: int, out_len: int, lr_index: int) -> int:
    """The first output pixel whose owner is lr_index or later (out_len where there is none): the smallest i with
    (2i + 1) lr_len >= 2 out_len lr_index, computed, not searched, so planning does not grow with the raster."""
    return min(out_len, max(0, -((lr_len - 2 * out_len * lr_index) // (2 * lr_len))))


def axis_spans(lr_len: int, out_len: int, latent_len: int, core: int, margin: int, latent_margin: int,
               texture_margin: int, tiled: tuple[int, int]) -> list[AxisSpan]:
    """Tiles along one axis: cores of `core` LR pixels from tiled[0] to tiled[1], each read with `margin` LR and
    `latent_margin` latent pixels; the decoded region reaches `texture_margin` output pixels (a multiple of 8)
    beyond the core's output."""
    first, stop = tiled
    spans = []
    for a in range(first, stop, core):
        b = min(stop, a + core)
        lo, hi = max(0, a - margin), min(lr_len, b + margin)
        out = (first_owned(lr_len, out_len, a), first_owned(lr_len, out_len, b))
        region = (out[0] if not texture_margin else max(0, out[0] // LATENT_FACTOR * LATENT_FACTOR - texture_margin),
                  out[1] if not texture_margin else min(out_len, -(-out[1] // LATENT_FACTOR) * LATENT_FACTOR + texture_margin))
        first = int(np.floor(lo * out_len / lr_len / LATENT_FACTOR)) - latent_margin
        last = int(np.ceil(hi * out_len / lr_len / LATENT_FACTOR)) + latent_margin
        owners = owner(lr_len, out_len, region[0], region[1])
        spans.append(AxisSpan((a, b), (lo, hi), out, (max(0, first), min(latent_len, last)),
                              region, (int(owners[0]), int(owners[-1]) + 1)))
    return spans


def texture_margin_out(config: E2DiffSRConfig) -> int:
    """Output pixels around a tile's own that the texture head reads, rounded up to whole latent pixels (its
    4 x 4 fold and the latent it reads stay on the scene's grid); 0 for a model without a texture head."""
    if not config.texture_channels:
        return 0
    return LATENT_FACTOR * -(-TextureHead.radius_out(config) // LATENT_FACTOR)


def project_block_means(output: torch.Tensor, lr_core: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """output (..., C, H, W) + the mean residual of each LR block, so that every block's mean equals lr_core (..., C, h, w).

    rows/cols: the core-relative LR pixel each output row/column belongs to. Computed in float32 even under
    bf16 autocast: the projection is what makes the output consistent with its input, to the last digit.
    """
    with torch.autocast(output.device.type, enabled=False):
        output, lr_core = output.float(), lr_core.float()
        r, c = torch.from_numpy(rows).to(output.device), torch.from_numpy(cols).to(output.device)
        h, w = lr_core.shape[-2:]
        one_r = torch.zeros(h, len(rows), dtype=output.dtype, device=output.device)
        one_r[r, torch.arange(len(rows), device=output.device)] = 1.0
        one_c = torch.zeros(w, len(cols), dtype=output.dtype, device=output.device)
        one_c[c, torch.arange(len(cols), device=output.device)] = 1.0
        counts = one_r.sum(1)[:, None] * one_c.sum(1)[None, :]
        means = torch.einsum("hi,...ij,wj->...hw", one_r, output, one_c) / counts
        residual = lr_core - means
        return output + residual[..., r, :][..., c]


@dataclass(frozen=True)
class SceneGeometry:
    """The low-resolution window, the output grid and the latent grid of one run."""

    lr_size: tuple[int, int]
    out_size: tuple[int, int]
    latent_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """The scale the network is told: the mean of the two axes' output/input ratios (as the engine's plan)."""
        (h, w), (oh, ow) = self.lr_size, self.out_size
        return (oh / h + ow / w) / 2.0


def core_side(scale: float) -> int:
    """LR pixels along a tile's core: about DECODE_TILE_OUTPUT_PX output pixels."""
    return max(MIN_CORE_LR_PX, int(DECODE_TILE_OUTPUT_PX / scale))


def tiles(config: E2DiffSRConfig, geometry: SceneGeometry, core: Optional[int] = None,
          kept: Optional[tuple[tuple[int, int], tuple[int, int]]] = None) -> Iterator[tuple[AxisSpan, AxisSpan]]:
    """Every (row span, column span) tile of the scene, row-major; with `kept` ((rows), (cols) of output pixels), the
    tiles of the LR pixels those output pixels fall in, their cores starting at the first of them: an extent's
    context is read, but not decoded (a block of the live layer decodes a quarter of its window)."""
    rows, cols = tile_axes(config, geometry, core, kept)
    for row in rows:
        for col in cols:
            yield row, col


def tile_axes(config: E2DiffSRConfig, geometry: SceneGeometry, core: Optional[int] = None,
              kept: Optional[tuple[tuple[int, int], tuple[int, int]]] = None) -> tuple[list[AxisSpan], list[AxisSpan]]:
    """The tiles' spans along the rows and along the columns (`tiles` pairs them): a run's tile count is the product
    of their lengths, known without walking the pairs (planning then grows with the side, not the area)."""
    scale = geometry.scale
    texture = texture_margin_out(config)
    # The texture region's own LR pixels (+ a latent pixel of rounding) must decode exactly too.
    margin = decode_margin_lr(config) + (math.ceil((texture + LATENT_FACTOR) / scale) if texture else 0)
    sizes = list(zip(geometry.lr_size, geometry.out_size, geometry.latent_size))
    if kept is None:
        tiled = [(0, lr) for lr, _, _ in sizes]
    else:
        tiled = [owned(lr, out, span) for (lr, out, _), span in zip(sizes, kept)]
    cores = [core] * 2 if core else tile_cores([b - a for a, b in tiled], core_side(scale))
    rows, cols = (axis_spans(lr, out, lat, side, margin, PRIOR_RADIUS_LATENT + 1, texture, along)
                  for (lr, out, lat), along, side in zip(sizes, tiled, cores))
    return rows, cols


def tile_cores(lengths: list[int], side: int) -> list[int]:
    """The core side along each axis for a decoded region of `lengths` LR pixels: `side`, except that a region
    that one tile would hold is cut in MIN_DECODE_TILES along its longer axis, so the lanes of a CPU share its
    decode (the cut depends on the region alone: the output is bitwise the same on any number of lanes)."""
    cores = [side, side]
    longer = int(lengths[1] > lengths[0])
    if max(lengths) <= side and lengths[longer] >= MIN_DECODE_TILES * MIN_CORE_LR_PX:
        cores[longer] = -(-lengths[longer] // MIN_DECODE_TILES)
    return cores


def owned(lr_len: int, out_len: int, out_span: tuple[int, int]) -> tuple[int, int]:
    """The LR pixels (start, stop) that the output pixels out_span fall in."""
    owners = owner(lr_len, out_len, out_span[0], out_span[1])
    return int(owners[0]), int(owners[-1]) + 1


ReadLatent = Callable[[slice, slice], np.ndarray]


@torch.no_grad()
def decode_tile(model: E2DiffSR, lr: np.ndarray, latent: Optional[ReadLatent], geometry: SceneGeometry,
                row: AxisSpan, col: AxisSpan, lr_consistency: bool, detail: float = 0.0) -> np.ndarray:
    """The output pixels (C, rows, cols) of one tile, in model units.

    lr: the whole low-resolution window (C, h, w), model units. latent(rows, cols): the raw-unit latent
    (z * latent_scale) over those latent slices; None decodes from z = 0 (the regression branch alone).
    detail: the share of the texture head's drawing added to the decoded output (0: none).
    """
    (h, w), (oh, ow) = geometry.lr_size, geometry.out_size
    device = next(model.parameters()).device
    lr_tile = torch.from_numpy(np.ascontiguousarray(lr[:, slice(*row.lr), slice(*col.lr)], dtype=np.float32))[None]
    z_rows, z_cols = slice(*row.latent), slice(*col.latent)
    if latent is None:
        z = torch.zeros((1, model.config.latent_channels, row.latent[1] - row.latent[0], col.latent[1] - col.latent[0]))
    else:
        z = torch.from_numpy(np.ascontiguousarray(latent(z_rows, z_cols), dtype=np.float32))[None]
    where = Sampling(row.lr_centres_out(oh / h), col.lr_centres_out(ow / w), row.out_centres_lr(h / oh), col.out_centres_lr(w / ow))
    scale = torch.full((1,), geometry.scale, device=device)
    lr_tile = lr_tile.to(device)
    features = model.features(lr_tile, z.to(device), where, scale)
    # Only the core (and what upsampling its pixels reads) goes through the costly per-output-pixel upsampler.
    rows, cols = row.upsampled(), col.upsampled()
    near = Sampling(where.lr_rows_out[rows], where.lr_cols_out[cols], where.out_rows_lr - rows.start, where.out_cols_lr - cols.start)
    output = model.upsample(lr_tile[..., rows, cols], features[..., rows, cols], near, scale).float()
    if detail and model.texture is not None:
        latent_rows = slice(row.region[0] // LATENT_FACTOR - row.latent[0], -(-row.region[1] // LATENT_FACTOR) - row.latent[0])
        latent_cols = slice(col.region[0] // LATENT_FACTOR - col.latent[0], -(-col.region[1] // LATENT_FACTOR) - col.latent[0])
        z_region = z[..., latent_rows, latent_cols].to(device) / model.config.latent_scale
        output = output + detail * model.texture(output, z_region, scale).float()
    output = output[0, :, row.kept(), col.kept()].cpu()
    if lr_consistency:
        core = lr_tile[0, :, row.core[0] - row.lr[0] : row.core[1] - row.lr[0], col.core[0] - col.lr[0] : col.core[1] - col.lr[0]]
        output = project_tile(output, core, geometry, row, col)
    return output.numpy()


def project_tile(output: torch.Tensor, lr_core: torch.Tensor, geometry: SceneGeometry, row: AxisSpan,
                 col: AxisSpan) -> torch.Tensor:
    """A tile's core output (C, out rows, out cols) with every LR block's mean set to lr_core's (C, core rows, core
    cols): the LR-consistency, for the decode and for the self-ensemble's average alike."""
    (h, w), (oh, ow) = geometry.lr_size, geometry.out_size
    return project_block_means(output, lr_core, owner(h, oh, *row.out) - row.core[0], owner(w, ow, *col.out) - col.core[0])
