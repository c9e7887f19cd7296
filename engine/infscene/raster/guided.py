"""Super-resolving bands the model was not trained on (NIR) by guidance from the visible bands.

The guide is the brightness of the visible bands (their mean). At the input resolution each extra
band is regressed on the guide (least squares with an intercept, over valid pixels). The detail
that super-resolution added to the guide (SR minus its bicubic upsampling) is carried over to the
extra band through that slope: extra_sr = bicubic(extra) + slope * (guide_sr - bicubic(guide)).
Where NIR follows brightness (vegetation edges, buildings) it gains the same edges; its low
frequencies stay those of the measured band. One slope per band, rather than one per visible
band, keeps the fit well conditioned: R, G and B are nearly collinear, and a multi-band fit gives
large opposite-signed slopes that amplify any colour noise in the SR detail.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GuidedBands:
    slopes: np.ndarray  # (extra_bands,)

    @staticmethod
    def moments(bands: int) -> GuideMoments:
        """Sums to accumulate over row blocks of the window; `fit()` then gives the slopes."""
        return GuideMoments(np.zeros(3 + 2 * bands), bands)

    def apply(self, extra_up: np.ndarray, visible_sr: np.ndarray, visible_up: np.ndarray) -> np.ndarray:
        detail = visible_sr.mean(axis=0) - visible_up.mean(axis=0)
        return extra_up + self.slopes[:, None, None] * detail[None]


@dataclass
class GuideMoments:
    """Running float64 sums of the guide g and each extra band e over valid pixels: n, g, g^2, and e, g e per band."""

    sums: np.ndarray
    bands: int

    def add(self, visible: np.ndarray, extra: np.ndarray, valid: np.ndarray) -> None:
        guide = visible.mean(axis=0)[valid].astype(np.float64)
        values = extra[:, valid].astype(np.float64)
        self.sums[:3] += (guide.size, guide.sum(), (guide * guide).sum())
        self.sums[3 : 3 + self.bands] += values.sum(axis=1)
        self.sums[3 + self.bands :] += (values * guide).sum(axis=1)

    def fit(self) -> GuidedBands:
        n, g, gg = self.sums[:3]
        if n == 0:
            return GuidedBands(np.zeros(self.bands, np.float32))
        variance = gg / n - (g / n) ** 2
        if variance <= 1e-12:
            return GuidedBands(np.zeros(self.bands, np.float32))
        e, ge = self.sums[3 : 3 + self.bands], self.sums[3 + self.bands :]
        return GuidedBands(((ge / n - (g / n) * (e / n)) / variance).astype(np.float32))
