"""Gaussian patch blending equals the paper's Eq. 16-17, computed here the direct way."""
from __future__ import annotations

import math

import numpy as np
import pytest

from infscene.iceplant.blend import PatchLayout, RowBlender, gaussian_window


def test_gaussian_window_is_eq16_with_sigma_s_over_4() -> None:
    w = gaussian_window(8, 8)  # S = 8, sigma = 2, centre (4, 4)
    assert w[4, 4] == 1.0
    assert w[0, 0] == pytest.approx(math.exp(-(16 + 16) / (2 * 4)))
    assert w[4, 7] == pytest.approx(math.exp(-9 / 8))
    assert w.shape == (8, 8)


def blend_rows(layout: PatchLayout, patches: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """Run the row blender over all patches and reassemble the rows it hands back."""
    blender = RowBlender(layout)
    out = np.full((layout.height, layout.width), np.nan, dtype=np.float32)
    rows = layout.rows
    for k, y0 in enumerate(rows):
        for x0 in layout.cols:
            blender.add(y0, x0, patches[y0, x0])
        first, done = blender.finish_row(rows[k + 1] if k + 1 < len(rows) else None)
        assert np.isnan(out[first : first + done.shape[0]]).all(), "a row was handed back twice"
        out[first : first + done.shape[0]] = done
    return out


@pytest.mark.parametrize("height,width,size,stride", [(37, 53, 16, 5), (40, 40, 16, 16), (10, 45, 16, 4)])
def test_row_blending_equals_eq17(height: int, width: int, size: int, stride: int) -> None:
    layout = PatchLayout(height, width, size, stride)
    rng = np.random.default_rng(0)
    ph, pw = layout.patch_height, layout.patch_width
    patches = {(y0, x0): rng.random((ph, pw)) for y0 in layout.rows for x0 in layout.cols}
    # Eq. 17 directly: sum_k P_k W_k / sum_k W_k over the whole raster
    numerator, denominator = np.zeros((height, width)), np.zeros((height, width))
    w = np.array([[math.exp(-((i - ph / 2) ** 2 / (2 * (ph / 4) ** 2) + (j - pw / 2) ** 2 / (2 * (pw / 4) ** 2)))
                   for j in range(pw)] for i in range(ph)])
    for (y0, x0), p in patches.items():
        numerator[y0 : y0 + ph, x0 : x0 + pw] += p * w
        denominator[y0 : y0 + ph, x0 : x0 + pw] += w
    assert denominator.min() > 0, "every pixel is covered"
    np.testing.assert_allclose(blend_rows(layout, patches), numerator / denominator, rtol=1e-6, atol=1e-7)


def test_a_constant_prediction_stays_constant() -> None:
    layout = PatchLayout(50, 70, 32, 8)
    patches = {(y0, x0): np.full((32, 32), 0.25) for y0 in layout.rows for x0 in layout.cols}
    np.testing.assert_allclose(blend_rows(layout, patches), 0.25, rtol=1e-6)


def test_layout_covers_the_raster_with_the_last_patch_flush() -> None:
    layout = PatchLayout(100, 70, 32, 24)
    assert layout.rows == [0, 24, 48, 68] and layout.cols == [0, 24, 38]
    assert len(layout) == 12
    assert PatchLayout(10, 20, 128, 32).rows == [0]  # a raster smaller than S is one cut patch


def test_patches_out_of_row_order_and_bad_strides_are_refused() -> None:
    blender = RowBlender(PatchLayout(40, 40, 16, 8))
    with pytest.raises(ValueError):
        blender.add(8, 0, np.zeros((16, 16)))
    with pytest.raises(ValueError):
        PatchLayout(40, 40, 16, 17)
