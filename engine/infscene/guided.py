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

    @classmethod
    def fit(cls, visible: np.ndarray, extra: np.ndarray, valid: np.ndarray) -> "GuidedBands":
        """Fit each extra band's slope on the guide, from the low-resolution window (model units)."""
        guide = visible.mean(axis=0)[valid].astype(np.float64)
        centred = guide - guide.mean()
        variance = float(np.mean(centred**2))
        if variance == 0.0:
            return cls(np.zeros(len(extra), np.float32))
        slopes = [np.mean(centred * (band[valid] - band[valid].mean())) / variance for band in extra]
        return cls(np.asarray(slopes, np.float32))

    def apply(self, extra_up: np.ndarray, visible_sr: np.ndarray, visible_up: np.ndarray) -> np.ndarray:
        detail = visible_sr.mean(axis=0) - visible_up.mean(axis=0)
        return extra_up + self.slopes[:, None, None] * detail[None]
