"""Windowed resampling (resample.py): any window is bitwise the same pixels of the whole image, the bicubic is
PyTorch's, and chunk windows read each stored chunk once."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F

from infscene.raster.blocks import blocks, tiles
from infscene.raster.resample import bicubic_window, covering, nearest_block, nearest_source
from scenes import FIXTURES


@pytest.fixture(scope="module")
def lr() -> np.ndarray:
    """A real 3-band window of NAIP (the committed fixture), 60 x 45, in [0, 1]."""
    with rasterio.open(FIXTURES / "naip_nd_5m_64.tif") as ds:
        return ds.read((1, 2, 3), window=((4, 64), (10, 55))).astype(np.float32) / 255.0


@pytest.mark.parametrize("out_h, out_w", [(240, 180), (222, 167)])  # 4x, and 3.7x on both axes
def test_bicubic_is_torchs_and_any_window_is_bitwise_the_whole_image(lr: np.ndarray, out_h: int, out_w: int) -> None:
    whole = bicubic_window(lr, out_h, out_w, slice(0, out_h), slice(0, out_w))
    torch_bicubic = F.interpolate(torch.from_numpy(lr)[None], size=(out_h, out_w), mode="bicubic", align_corners=False)[0]
    np.testing.assert_allclose(whole, torch_bicubic.numpy(), atol=2e-6)
    rng = np.random.default_rng(0)
    for _ in range(10):
        r0, c0 = rng.integers(0, out_h - 1), rng.integers(0, out_w - 1)
        rows, cols = slice(r0, rng.integers(r0 + 1, out_h + 1)), slice(c0, rng.integers(c0 + 1, out_w + 1))
        assert np.array_equal(bicubic_window(lr, out_h, out_w, rows, cols), whole[:, rows, cols])


def test_nearest_block_is_the_whole_nearest_upsampling_cut_to_the_window(lr: np.ndarray) -> None:
    in_h, in_w = lr.shape[1:]
    out_h, out_w = 222, 167
    whole_rows = nearest_source(in_h, out_h, slice(0, out_h))
    whole_cols = nearest_source(in_w, out_w, slice(0, out_w))
    assert whole_rows[0] == 0 and whole_rows[-1] == in_h - 1 and (np.diff(whole_rows) >= 0).all()
    # output pixel j's centre (j + 0.5) * in / out falls in input pixel floor of it
    assert np.array_equal(whole_cols, np.floor((np.arange(out_w) + 0.5) * in_w / out_w).astype(int))
    whole = lr[0][np.ix_(whole_rows, whole_cols)]
    rows, cols = slice(37, 140), slice(11, 99)
    under_rows, under_cols = nearest_source(in_h, out_h, rows), nearest_source(in_w, out_w, cols)
    source = lr[0][covering(under_rows), covering(under_cols)]
    assert np.array_equal(nearest_block(under_rows, under_cols, source), whole[rows, cols])


@pytest.mark.parametrize("height, width, chunk, pixels", [
    (2000, 31623, (512, 512), 500_000),  # a wide store canvas: 512 x 512 windows, chunk-aligned
    (1000, 3000, (128, 128), 500_000),  # SR3's state chunks: bands of 128 rows, 3840-px-wide windows
    (700, 900, (700, 900), 100_000),  # an array in memory (one chunk): full-width row blocks
    (300, 50, (512, 512), 1_000),  # chunks larger than the budget and the array
])
def test_blocks_tile_the_array_once_and_never_split_a_chunk_between_windows(
        height: int, width: int, chunk: tuple[int, int], pixels: int) -> None:
    seen = np.zeros((height, width), dtype=np.int32)
    owner = {}
    for index, (rows, cols) in enumerate(blocks(height, width, pixels, chunk)):
        seen[rows, cols] += 1
        assert (rows.stop - rows.start) * (cols.stop - cols.start) <= max(pixels, min(chunk[1], width))
        if chunk[0] * chunk[1] <= pixels:
            for r in range(rows.start // chunk[0], -(-rows.stop // chunk[0])):
                for c in range(cols.start // chunk[1], -(-cols.stop // chunk[1])):
                    assert owner.setdefault((r, c), index) == index  # a chunk is read by one window only
    assert (seen == 1).all()


@pytest.mark.parametrize("height, width, pixels", [(700, 900, 100_000), (5, 3, 1), (40, 1000, 2_000_000), (0, 8, 10)])
def test_blocks_without_chunks_are_full_width_rows_of_about_the_budget(height: int, width: int, pixels: int) -> None:
    rows = max(1, pixels // width)
    expected = [(slice(r, min(height, r + rows)), slice(0, width)) for r in range(0, height, rows)]
    assert list(blocks(height, width, pixels)) == expected
    assert list(tiles(height, width, (rows, width))) == expected
