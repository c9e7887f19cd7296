"""A side-by-side PNG of the input window (enlarged, nearest) and the super-resolved output.

For a quick look without a GIS: both panels have the output's pixel size, so detail can be
compared one to one. Both panels get the same per-band stretch (the input's 2-98 percentiles), so
colours and brightness can be compared too. Like every output, the PNG appears only when complete.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from .atomic import atomic_output
from ..errors import InfSceneError
from .io import WindowData, open_raster, read_window, resolve_bands, resolve_window
from .workspace import Workspace

MAX_PREVIEW_SIDE = 2048


def _stretch(rgb: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    scaled = (rgb - low[:, None, None]) / np.maximum(high - low, 1e-6)[:, None, None]
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def _visible(path: Path, bounds: Optional[Sequence[float]]) -> WindowData:
    with open_raster(path) as ds:
        layout = resolve_bands(ds)
        return read_window(ds, resolve_window(ds, bounds), layout.visible, None)


def write_side_by_side(input_path: Path, output_path: Path, png_path: Path, bounds: Optional[Sequence[float]] = None) -> Path:
    """Write `png_path`: input window (left) and output (right), at most MAX_PREVIEW_SIDE high."""
    before, after = _visible(input_path, bounds), _visible(output_path, None)
    low, high = np.percentile(before.values[:, before.valid], (2, 98), axis=1)
    right = _stretch(after.values, low, high)
    left = cv2.resize(_stretch(before.values, low, high), (right.shape[1], right.shape[0]), interpolation=cv2.INTER_NEAREST)
    pair = np.concatenate([left, np.full((right.shape[0], 8, 3), 255, np.uint8), right], axis=1)
    factor = min(1.0, MAX_PREVIEW_SIDE / max(pair.shape[:2]))
    if factor < 1.0:
        pair = cv2.resize(pair, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    with Workspace() as workspace, atomic_output(png_path, workspace) as tmp:
        if not cv2.imwrite(str(tmp.with_suffix(".png")), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR)):
            raise InfSceneError(f"could not write the preview {png_path} (full disk?)")
        tmp.with_suffix(".png").replace(tmp)
    return png_path
