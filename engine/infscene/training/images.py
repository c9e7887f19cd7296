"""Training previews as images: model-unit batches side by side, one row per sample, in an 8-bit PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) model units -> (B, H, W, C) 8-bit."""
    return ((x.detach().cpu().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def write_image_rows(path: Path, columns: Sequence[torch.Tensor]) -> None:
    """One row per sample, one column per image batch (all the same size), as an 8-bit PNG."""
    rows = [np.concatenate(row, axis=1) for row in zip(*(to_uint8(c) for c in columns))]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
