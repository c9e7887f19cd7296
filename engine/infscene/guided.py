"""Super-resolving bands the model was not trained on (NIR) by guidance from the visible bands.

At the input resolution, each extra band is regressed on the visible bands (least squares with
an intercept, over valid pixels). The detail that super-resolution added to the visible bands
(SR minus their bicubic upsampling) is carried over to the extra band through the regression
slopes: extra_sr = bicubic(extra) + slopes . (visible_sr - bicubic(visible)). Where NIR follows
the visible bands (vegetation edges, buildings) it gains the same edges; its low frequencies
stay exactly those of the measured band.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_FIT_PIXELS = 1_000_000


@dataclass(frozen=True)
class GuidedBands:
    slopes: np.ndarray  # (extra_bands, visible_bands)

    @classmethod
    def fit(cls, visible: np.ndarray, extra: np.ndarray, valid: np.ndarray) -> "GuidedBands":
        """Fit slopes from the low-resolution window (model units)."""
        x = visible[:, valid].T.astype(np.float64)
        y = extra[:, valid].T.astype(np.float64)
        if len(x) > MAX_FIT_PIXELS:
            step = len(x) // MAX_FIT_PIXELS
            x, y = x[::step], y[::step]
        design = np.hstack([x, np.ones((len(x), 1))])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return cls(coef[:-1].T.astype(np.float32))

    def apply(self, extra_up: np.ndarray, visible_sr: np.ndarray, visible_up: np.ndarray) -> np.ndarray:
        detail = visible_sr - visible_up
        return extra_up + np.einsum("ev,vhw->ehw", self.slopes, detail)
