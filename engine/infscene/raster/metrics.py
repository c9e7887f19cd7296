"""Image quality measures used by the tests and the benchmarks, and the low frequencies they and SR3's
LR-consistency share (what the low-resolution sensor sees).

All take (bands, height, width) arrays in the same units. The seam score and the high-frequency
ratio are what tell the fusion modes apart: seams show as gradient jumps on patch borders, and
variance erosion as lost high-frequency energy.
"""
from __future__ import annotations

from typing import Iterable, Optional

import cv2
import numpy as np
import torch
from torch.nn import functional as F


def low_frequencies(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The part of x that the low-resolution sensor sees: area-downsample by `scale`, bicubic back."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h / scale)), max(1, round(w / scale))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)


def rmse(output: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((output.astype(np.float64) - truth.astype(np.float64)) ** 2)))


def psnr(output: np.ndarray, truth: np.ndarray, max_value: float = 255.0) -> float:
    error = rmse(output, truth)
    return float("inf") if error == 0 else float(20 * np.log10(max_value / error))


def seam_score(image: np.ndarray, borders: Iterable[int], axis: int) -> float:
    """Mean absolute step across the given borders divided by the mean step anywhere (1 = no seam).

    A border b along `axis` (2 = columns, 1 = rows) is the step between pixel b-1 and pixel b. NaN where no
    border lies inside the image (a crop within one patch has no seam to score).
    """
    steps = np.abs(np.diff(image.astype(np.float64), axis=axis))
    index = [b - 1 for b in borders if 0 < b < image.shape[axis]]
    if not index:
        return float("nan")
    on_border = np.take(steps, index, axis=axis).mean()
    return float(on_border / steps.mean())


def high_frequencies(image: np.ndarray, scale: float) -> np.ndarray:
    """What the low-resolution sensor cannot see: the image minus its low_frequencies.

    The same operator SR3's LR-consistency uses (models/sr3/denoiser.py), so the ratio measures exactly the part of
    the output the model is free to invent.
    """
    pixels = torch.from_numpy(np.array(image, dtype=np.float64))[None]
    return (pixels - low_frequencies(pixels, scale))[0].numpy()


def high_frequency_ratio(output: np.ndarray, truth: np.ndarray, scale: float, where: Optional[np.ndarray] = None) -> float:
    """Energy of the output's high frequencies relative to the truth's (1 = as much texture as the truth),
    over the pixels where the (height, width) mask `where` is true (all pixels by default; NaN if it is empty)."""
    where = np.ones(output.shape[1:], bool) if where is None else where
    if not where.any():
        return float("nan")
    return float(np.sum(high_frequencies(output, scale)[:, where] ** 2) / np.sum(high_frequencies(truth, scale)[:, where] ** 2))


def lr_consistency(output: np.ndarray, low_res: np.ndarray) -> float:
    """Mean absolute difference between the output area-downsampled to the input grid and the input."""
    bands, h, w = low_res.shape
    down = np.stack([cv2.resize(output[b].astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for b in range(bands)])
    return float(np.mean(np.abs(down - low_res.astype(np.float32))))
