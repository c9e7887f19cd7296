"""The quality measures of the benchmarks, on images whose answer is known exactly."""
from __future__ import annotations

import numpy as np
import pytest

from infscene.raster.metrics import high_frequencies, high_frequency_ratio, lr_consistency, psnr, rmse, seam_score


def checkerboard(cell: int, cells: int = 8) -> np.ndarray:
    """Alternating 0/200 cells of `cell` pixels."""
    pattern = (np.indices((cells, cells)).sum(axis=0) % 2) * 200.0
    return np.kron(pattern, np.ones((cell, cell)))[None]


def test_a_constant_image_has_no_high_frequencies() -> None:
    assert np.abs(high_frequencies(np.full((3, 40, 40), 117.0), 4.0)).max() < 1e-9


def test_detail_finer_than_a_low_resolution_pixel_is_all_high_frequency() -> None:
    fine = checkerboard(cell=1, cells=32)
    np.testing.assert_allclose(high_frequencies(fine, 4.0), fine - 100.0, atol=1e-9)


def test_a_smooth_ramp_is_low_frequency_away_from_the_edges() -> None:
    ramp = np.broadcast_to(np.linspace(0.0, 200.0, 64), (2, 64, 64))
    pixel_step = 200.0 / 63
    # torch's bicubic (a = -0.75) follows a ramp to within a fraction of one pixel's step
    assert np.abs(high_frequencies(ramp, 4.0)[:, 8:-8, 8:-8]).max() < 0.2 * pixel_step


def test_high_frequency_ratio_is_the_energy_ratio() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(120.0, 30.0, (3, 64, 64))
    assert high_frequency_ratio(truth, truth, 5.0) == pytest.approx(1.0)
    assert high_frequency_ratio(2.0 * truth, truth, 5.0) == pytest.approx(4.0)
    assert high_frequency_ratio(truth + 40.0, truth, 5.0) == pytest.approx(1.0)
    left = np.zeros((64, 64), bool)
    left[:, :32] = True
    half_flat = truth.copy()
    half_flat[:, :, 32:] = 120.0
    assert high_frequency_ratio(3.0 * truth, truth, 5.0, where=left) == pytest.approx(9.0)
    assert high_frequency_ratio(half_flat, truth, 5.0, where=~left) < 0.2 < high_frequency_ratio(half_flat, truth, 5.0, where=left)
    assert np.isnan(high_frequency_ratio(truth, truth, 5.0, where=np.zeros_like(left)))  # no pixel: no figure, no warning


def test_seam_score_is_the_border_step_over_the_mean_step_and_nan_without_a_border() -> None:
    image = np.zeros((1, 4, 6))
    image[:, :, 3:] = 6.0  # one step of 6 between columns 2 and 3, none elsewhere
    assert seam_score(image, [3], axis=2) == pytest.approx(6.0 / (6.0 / 5))
    assert np.isnan(seam_score(image, [0, 6], axis=2))


def test_lr_consistency_is_zero_for_an_output_whose_block_means_are_the_input() -> None:
    fine = checkerboard(cell=1, cells=32)
    block_means = np.full((1, 8, 8), 100.0)
    assert lr_consistency(fine, block_means) == pytest.approx(0.0, abs=1e-5)
    assert lr_consistency(fine + 3.0, block_means) == pytest.approx(3.0, abs=1e-5)


def test_rmse_and_psnr_of_a_known_offset() -> None:
    truth = np.zeros((3, 10, 10))
    assert rmse(truth + 5.0, truth) == pytest.approx(5.0)
    assert psnr(truth + 5.0, truth) == pytest.approx(20 * np.log10(255.0 / 5.0))
