"""The patch grid: overlapping square patches covering an H x W canvas.

Patches start every `patch - overlap` pixels; the last row and column are moved flush with the
border so that every pixel is covered and no patch leaves the canvas. Each patch keeps its
(row, col) place in the grid; its noise is keyed by that place counted from `key_origin`, the lattice index of
the canvas's first patch, so that a canvas that is part of a larger map-anchored lattice (raster/anchor.py)
draws the noise the larger canvas would draw there (see schedule.patch_noise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Patch:
    row: int
    col: int
    y0: int
    x0: int
    size: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.size), slice(self.x0, self.x0 + self.size)


def axis_starts(length: int, patch: int, overlap: int) -> list[int]:
    """Patch start offsets along one axis, the last one flush with the end."""
    if length < patch:
        raise ValueError(f"axis of {length} px is shorter than the patch ({patch} px)")
    stride = patch - overlap
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


@dataclass(frozen=True)
class PatchGrid:
    height: int
    width: int
    patch: int
    overlap: int
    key_origin: tuple[int, int] = (0, 0)  # lattice (row, col) of the first patch: added to each patch's noise key

    def __post_init__(self) -> None:
        if self.patch <= 0:
            raise ValueError("patch size must be positive")
        if not 0 <= self.overlap < self.patch:
            raise ValueError(f"overlap must be in [0, patch) = [0, {self.patch}), got {self.overlap}")

    @property
    def rows(self) -> list[int]:
        return axis_starts(self.height, self.patch, self.overlap)

    @property
    def cols(self) -> list[int]:
        return axis_starts(self.width, self.patch, self.overlap)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[Patch]:
        for r, y0 in enumerate(self.rows):
            for c, x0 in enumerate(self.cols):
                yield Patch(r, c, y0, x0, self.patch)

    def noise_keys(self, batch: list[Patch]) -> tuple[list[int], list[int]]:
        """The lattice rows and columns that key the batch's noise."""
        return [p.row + self.key_origin[0] for p in batch], [p.col + self.key_origin[1] for p in batch]

    def index(self, patch: Patch) -> int:
        """The patch's place in grid order (row-major): its slot in per-patch stores."""
        return patch.row * len(self.cols) + patch.col

    def overlapping(self, rows: slice, cols: slice) -> list[Patch]:
        """The patches that cover any pixel of the region, in grid order.

        Summing their contributions in this order gives each pixel the same sequence of float
        additions as a pass over the whole grid, so a region fused on its own is bitwise equal.
        """
        hit_rows = [(r, y0) for r, y0 in enumerate(self.rows) if y0 < rows.stop and y0 + self.patch > rows.start]
        hit_cols = [(c, x0) for c, x0 in enumerate(self.cols) if x0 < cols.stop and x0 + self.patch > cols.start]
        return [Patch(r, c, y0, x0, self.patch) for r, y0 in hit_rows for c, x0 in hit_cols]

    def batches(self, batch_size: int) -> Iterator[list[Patch]]:
        batch: list[Patch] = []
        for patch in self:
            batch.append(patch)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
