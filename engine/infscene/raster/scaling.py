"""Per-band scaling between the input's units and the model's value range.

The model works on 8-bit-like intensities mapped to [-1, 1]. uint8 bands are used as they are.
uint16, int16 and float bands (Planet analytic, reflectance) are stretched linearly from their
0.1-99.9 percentiles, measured over the valid pixels of the window, to that range; the inverse
maps the result back into the input's units and dtype, so a Planet scene stays a Planet scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..modelformat.contract import ModelContract

STRETCH_PERCENTILES = (0.1, 99.9)
MAX_SAMPLE_PIXELS = 1_000_000


@dataclass(frozen=True)
class BandScaling:
    """model = (value - low) / (high - low) * (vmax - vmin) + vmin, then mapped to [-1, 1]."""

    low: np.ndarray  # (bands,)
    high: np.ndarray  # (bands,)
    dtype: np.dtype

    def subset(self, indices: Sequence[int]) -> BandScaling:
        """The scaling of some of the bands, in that order."""
        return BandScaling(self.low[list(indices)], self.high[list(indices)], self.dtype)

    def to_model(self, values: np.ndarray) -> np.ndarray:
        span = (self.high - self.low)[:, None, None]
        return ((values - self.low[:, None, None]) / span * 2.0 - 1.0).astype(np.float32)

    def from_model(self, values: np.ndarray) -> np.ndarray:
        """Back to input units, rounded and clipped to the dtype's range for integer types."""
        out = (values.astype(np.float64) + 1.0) / 2.0 * (self.high - self.low)[:, None, None] + self.low[:, None, None]
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(self.dtype)


def fit_scaling(values: np.ndarray, valid: np.ndarray, dtype: np.dtype, config: ModelContract) -> BandScaling:
    """Choose each band's scaling from the window's valid pixels (fixed for uint8)."""
    samples = None
    if np.dtype(dtype) != np.uint8:
        samples = values[:, valid]
        if samples.shape[1] > MAX_SAMPLE_PIXELS:
            samples = samples[:, :: samples.shape[1] // MAX_SAMPLE_PIXELS]
    return stretch_from_sample(samples, values.shape[0], dtype, config)


def stretch_from_sample(samples: Optional[np.ndarray], bands: int, dtype: np.dtype, config: ModelContract) -> BandScaling:
    """The scaling of `bands` bands of `dtype`: fixed for uint8, else stretched between the STRETCH_PERCENTILES of
    `samples` (bands, n valid pixels)."""
    if np.dtype(dtype) == np.uint8 or samples is None:
        return BandScaling(np.full(bands, config.value_min), np.full(bands, config.value_max), np.dtype(dtype))
    low, high = np.percentile(samples, STRETCH_PERCENTILES, axis=1)
    high = np.where(high > low, high, low + 1.0)
    return BandScaling(low.astype(np.float64), high.astype(np.float64), np.dtype(dtype))


def fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels by each band's mean, so nodata does not bleed into its neighbours' texture."""
    filled = values.copy()
    means = values[:, valid].mean(axis=1)
    filled[:, ~valid] = means[:, None]
    return filled
