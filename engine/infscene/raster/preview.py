"""A side-by-side PNG: the input window (enlarged, nearest), its bicubic enlargement, and the super-resolved output.

For a quick look without a GIS: every panel has the output's pixel size, so detail can be compared one to
one, and bicubic beside the result shows what the model adds beyond interpolation. Every panel gets the same
per-band stretch (the input's 2-98 percentiles), so colours and brightness can be compared too, and a label
names it. Like every output, the PNG appears only when complete.
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


def _labelled(panel: np.ndarray, label: str) -> np.ndarray:
    """The panel with its name in the top-left corner, white on a dark band, readable on any image."""
    panel = panel.copy()
    scale = max(0.4, panel.shape[1] / 640)
    (width, height), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    panel[: height + base + 6, : width + 8] //= 3
    cv2.putText(panel, label, (4, height + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def write_side_by_side(input_path: Path, output_path: Path, png_path: Path, bounds: Optional[Sequence[float]] = None) -> Path:
    """Write `png_path`: input window (nearest), bicubic and output, left to right, at most MAX_PREVIEW_SIDE wide."""
    before, after = _visible(input_path, bounds), _visible(output_path, None)
    low, high = np.percentile(before.values[:, before.valid], (2, 98), axis=1)
    result = _stretch(after.values, low, high)
    size = (result.shape[1], result.shape[0])
    source = before.values.astype(np.float32).transpose(1, 2, 0)
    bicubic = cv2.resize(source, size, interpolation=cv2.INTER_CUBIC).reshape(size[1], size[0], -1).transpose(2, 0, 1)
    panels = [_labelled(cv2.resize(_stretch(before.values, low, high), size, interpolation=cv2.INTER_NEAREST), "input"),
              _labelled(_stretch(bicubic, low, high), "bicubic"), _labelled(result, "InfScene")]
    gap = np.full((result.shape[0], 8, 3), 255, np.uint8)
    pair = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    factor = min(1.0, MAX_PREVIEW_SIDE / max(pair.shape[:2]))
    if factor < 1.0:
        pair = cv2.resize(pair, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    with Workspace() as workspace, atomic_output(png_path, workspace) as tmp:
        if not cv2.imwrite(str(tmp.with_suffix(".png")), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR)):
            raise InfSceneError(f"could not write the preview {png_path} (full disk?)")
        tmp.with_suffix(".png").replace(tmp)
    return png_path
