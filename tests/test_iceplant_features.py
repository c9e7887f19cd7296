"""The iceplant features equal hand-computed values and the training CSV's definitions."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from infscene.iceplant.features import (
    compute_features,
    feature_matrix,
    feature_names,
    ndvi,
    ndvi_levels,
    window_entropy,
    window_mean,
)
from infscene.iceplant.labels import split_path


def entropy_bits(counts: list[int]) -> float:
    p = np.array(counts, dtype=np.float64) / sum(counts)
    return float(-(p * np.log2(p)).sum())


def test_feature_names_follow_the_csv_columns() -> None:
    assert feature_names(True) == (
        "r", "g", "b", "nir", "ndvi",
        "r_avg13", "r_entr13", "g_avg13", "g_entr13", "b_avg13", "b_entr13",
        "nir_avg13", "nir_entr13", "ndvi_avg13", "ndvi_entr13",
    )
    assert feature_names(False) == ("r", "g", "b", "r_avg13", "r_entr13", "g_avg13", "g_entr13", "b_avg13", "b_entr13")


def test_ndvi_and_its_entropy_levels() -> None:
    red = np.array([99, 50, 0, 200], dtype=np.uint8)
    nir = np.array([151, 150, 0, 0], dtype=np.uint8)
    # (151-99)/250, (150-50)/200, 0 by convention where nir + red = 0, (0-200)/200; uint8 arithmetic would wrap
    np.testing.assert_array_equal(ndvi(red, nir), [0.208, 0.5, 0.0, -1.0])
    # ndvi * 100 + 100 truncated: 0.208 -> 120.8 -> 120, -0.255 -> 74.5 -> 74
    np.testing.assert_array_equal(ndvi_levels(np.array([0.208, 0.5, -1.0, 1.0, -0.255])), [120, 150, 0, 200, 74])


def test_window_mean_is_the_13x13_sum_over_169_inside_and_the_valid_mean_at_borders() -> None:
    rng = np.random.default_rng(1)
    band = rng.integers(0, 256, (20, 20)).astype(np.uint8)
    valid = np.ones(band.shape, bool)
    mean = window_mean(band, valid)
    assert mean[10, 9] == band[4:17, 3:16].sum() / 169
    assert mean[0, 0] == band[:7, :7].mean()  # only the 7x7 in-image part of the window
    valid[12, 9] = False
    assert window_mean(band, valid)[10, 9] == (band[4:17, 3:16].sum() - int(band[12, 9])) / 168


def test_ndvi_window_mean_truncates_the_sum_like_the_original() -> None:
    values = np.full((13, 13), 0.3)
    # sum 169 * 0.3 = 50.7: the original's int64 convolution output keeps 50
    assert window_mean(values, np.ones((13, 13), bool), truncate_sum=True)[6, 6] == 50 / 169
    assert window_mean(-values, np.ones((13, 13), bool), truncate_sum=True)[6, 6] == -50 / 169


def test_entropy_counts_the_113_pixels_of_a_radius_6_disk_in_bits() -> None:
    levels = np.full((13, 13), 7, dtype=np.uint8)
    valid = np.ones(levels.shape, bool)
    levels[6, 6] = 9
    assert window_entropy(levels, valid)[6, 6] == pytest.approx(entropy_bits([112, 1]), abs=1e-12)
    levels[0, 0] = levels[12, 12] = 9  # corners of the 13x13 box lie outside the disk
    assert window_entropy(levels, valid)[6, 6] == pytest.approx(entropy_bits([112, 1]), abs=1e-12)
    levels[0, 6] = 9  # the top of the disk (distance 6) is inside
    assert window_entropy(levels, valid)[6, 6] == pytest.approx(entropy_bits([111, 2]), abs=1e-12)
    valid[6, 6] = valid[0, 6] = False  # masked pixels leave the histogram
    assert window_entropy(levels, valid)[6, 6] == 0.0


def test_compute_features_on_a_constructed_raster() -> None:
    red = np.full((13, 13), 50, dtype=np.uint8)
    nir = np.full((13, 13), 150, dtype=np.uint8)
    nir[6, 6] = 151  # ndvi 101/201 = 0.50248..., level 150 like its neighbours' 0.5
    nir[0, 6] = 250  # ndvi 200/300 = 0.666..., level 166
    bands = {"r": red, "g": red + 10, "b": red + 20, "nir": nir}
    f = compute_features(bands, np.ones((13, 13), bool), with_nir=True)
    assert set(f) == set(feature_names(True)) and all(v.dtype == np.float32 for v in f.values())
    assert f["ndvi"][6, 6] == np.float32(101 / 201)
    assert f["nir_avg13"][6, 6] == np.float32((150 * 169 + 1 + 100) / 169)
    assert f["ndvi_avg13"][6, 6] == np.float32(np.trunc(167 * 0.5 + 101 / 201 + 200 / 300) / 169)
    assert f["ndvi_entr13"][6, 6] == np.float32(entropy_bits([112, 1]))  # 0.5 and 0.5025 share a level
    assert f["nir_entr13"][6, 6] == np.float32(entropy_bits([111, 1, 1]))
    assert f["g_entr13"][6, 6] == 0.0 and f["g_avg13"][6, 6] == 60.0
    matrix = feature_matrix(f, feature_names(True))
    assert matrix.shape == (169, 15) and matrix[6 * 13 + 6, 4] == f["ndvi"][6, 6]


def read_csv_column(split: str, name: str) -> np.ndarray:
    path = split_path(split)
    if not path.exists():
        pytest.skip(f"shared iceplant labels not available: {path}")
    with Path(path).open(newline="") as f:
        return np.array([float(row[name]) for row in csv.DictReader(f)], dtype=np.float32)


@pytest.mark.parametrize("band", ["r", "g", "b", "nir", "ndvi"])
def test_every_csv_window_mean_is_an_integer_sum_over_169(band: str) -> None:
    for split in ("train", "test"):
        mean = read_csv_column(split, f"{band}_avg13")
        sums = mean.astype(np.float64) * 169
        # float32 storage allows 169 * half an ulp of the mean
        assert np.all(np.abs(sums - np.round(sums)) <= 169 * np.spacing(np.abs(mean)))
        assert np.all(np.float32(np.round(sums) / 169) == mean)


def partition_entropies(pixels: int, max_bins: int) -> np.ndarray:
    """Entropies (bits) of every histogram of ``pixels`` values with at most ``max_bins`` distinct values."""
    out: list[float] = []

    def walk(remaining: int, bins_left: int, largest: int, counts: list[int]) -> None:
        if remaining == 0:
            out.append(entropy_bits(counts))
            return
        for c in range(min(remaining, largest), 0, -1):
            if c * bins_left < remaining:
                break
            walk(remaining - c, bins_left - 1, c, counts + [c])

    walk(pixels, max_bins, pixels, [])
    return np.sort(np.array(out))


def test_csv_ndvi_entropies_are_histograms_of_113_pixels_not_169() -> None:
    """The lowest NDVI entropies are exactly (to float32) entropies of <=5-value histograms of a 113-pixel disk."""
    lowest = np.sort(read_csv_column("train", "ndvi_entr13"))[:60]

    def matches(pixels: int) -> int:
        table = partition_entropies(pixels, 5)
        idx = np.clip(np.searchsorted(table, lowest), 1, len(table) - 1)
        nearest = np.minimum(np.abs(table[idx] - lowest), np.abs(table[idx - 1] - lowest))
        return int(np.sum(nearest <= 1.5 * np.spacing(lowest)))

    assert matches(113) >= 5  # disk(6); chance matches are ~0.2 of 60
    assert matches(169) == 0  # a full 13x13 square
