"""The iceplant model's per-pixel and window features, computed exactly as the training CSV defines them.

The labels (Galaz Garcia, Brun, Halpern; carmengg/iceplant-detection-santa-barbara) come with no
imagery, only these columns, so the engine must recompute them bit for bit on any raster:

- ``r, g, b, nir``: the 8-bit band values.
- ``ndvi``: ``(nir - r) / (nir + r)`` with the bands as int16, in float64 (0 where both are 0).
- ``<band>_avg13``: mean over the 13x13 window centred on the pixel. The original computed it as
  ``scipy.ndimage.convolve(band, ones((13, 13)), mode="constant", output="int64") / 169``; for the
  8-bit bands the sum is exact, so every value times 169 is an integer (checked on every CSV row).
  For NDVI the float sum is *truncated toward zero* by that int64 output before the division, a
  quirk we keep because the model learnt from it (every ``ndvi_avg13`` times 169 is an integer).
- ``<band>_entr13``: Shannon entropy in bits of the value histogram in a disk of radius 6
  (``skimage.filters.rank.entropy(band, disk(6))``, 113 pixels), the radius that goes with the
  13-pixel box (the original's ``box = 2 r + 1``). NDVI is entropy-coded on the integers
  ``uint8(ndvi * 100 + 100)`` (0..200, truncated), as the original did.

Only valid pixels enter a window: the mean divides by the number of valid pixels and the entropy
histogram uses a mask. Inside the image and away from nodata this is identical to the original;
at borders it avoids the original's zero padding, which would darken the mean.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.ndimage import convolve1d
from skimage.filters.rank import entropy
from skimage.morphology import disk

WINDOW = 13
ENTROPY_RADIUS = WINDOW // 2
SPECTRAL_NIR = ("r", "g", "b", "nir")
SPECTRAL_RGB = ("r", "g", "b")


def feature_names(with_nir: bool) -> tuple[str, ...]:
    """Column names of one model variant, in the order the model reads them."""
    bands = (*SPECTRAL_NIR, "ndvi") if with_nir else SPECTRAL_RGB
    windows = tuple(f"{band}_{kind}{WINDOW}" for band in bands for kind in ("avg", "entr"))
    return (*bands, *windows)


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """NDVI in float64 from 8-bit red and NIR, computed in int16 as the CSV's ``ndvi`` column is."""
    red16, nir16 = red.astype(np.int16), nir.astype(np.int16)
    total = nir16 + red16
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (nir16 - red16) / total
    out[total == 0] = 0.0
    return out


def ndvi_levels(values: np.ndarray) -> np.ndarray:
    """NDVI mapped to the 0..200 integer levels its entropy is computed on (truncating, as the original)."""
    return (values * 100 + 100).astype(np.uint8)


def window_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the 13x13 window (zero outside the array), as two 1-D passes: exact for integer values."""
    ones = np.ones(WINDOW)
    rows = convolve1d(values.astype(np.float64), ones, axis=0, mode="constant", cval=0.0)
    return convolve1d(rows, ones, axis=1, mode="constant", cval=0.0)


def window_mean(values: np.ndarray, valid: np.ndarray, truncate_sum: bool = False) -> np.ndarray:
    """Mean of the valid pixels in the 13x13 window; ``truncate_sum`` reproduces the NDVI quirk.

    The NDVI sum is a float sum in a different order from the original 2-D convolution, so its
    truncation can differ only where the sum lies within ~1e-12 of an integer.
    """
    total = window_sum(np.where(valid, values, 0))
    count = window_sum(valid)
    if truncate_sum:
        total = np.trunc(total)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def window_entropy(levels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Entropy (bits) of the integer levels of the valid pixels in the radius-6 disk.

    The levels are first renumbered 0..k-1 (k distinct values): entropy does not depend on the
    labels, and skimage's cost grows with the largest label.
    """
    compact = np.unique(levels, return_inverse=True)[1].reshape(levels.shape).astype(np.uint8)
    return entropy(compact, disk(ENTROPY_RADIUS), mask=valid.astype(np.uint8))


def compute_features(bands: Mapping[str, np.ndarray], valid: np.ndarray, with_nir: bool) -> dict[str, np.ndarray]:
    """All features of one variant as float32 arrays of the image's shape.

    ``bands`` maps ``r, g, b`` (and ``nir`` when ``with_nir``) to 2-D uint8 arrays. Values are
    rounded to float32 because the CSV stores them so and the model's inputs must match it.
    """
    names = SPECTRAL_NIR if with_nir else SPECTRAL_RGB
    features: dict[str, np.ndarray] = {name: bands[name].astype(np.float64) for name in names}
    for name in names:
        features[f"{name}_avg{WINDOW}"] = window_mean(bands[name], valid)
        features[f"{name}_entr{WINDOW}"] = window_entropy(bands[name], valid)
    if with_nir:
        index = ndvi(bands["r"], bands["nir"])
        features["ndvi"] = index
        features[f"ndvi_avg{WINDOW}"] = window_mean(index, valid, truncate_sum=True)
        features[f"ndvi_entr{WINDOW}"] = window_entropy(ndvi_levels(index), valid)
    return {name: value.astype(np.float32) for name, value in features.items()}


def feature_matrix(features: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Stack the named features into an (n_pixels, n_features) float32 matrix, pixels in row-major order."""
    return np.stack([features[name].reshape(-1) for name in names], axis=1)
