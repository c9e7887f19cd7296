"""The shared iceplant label set (train/test CSVs) as feature matrices and labels.

Values are parsed into float32 because that is how the original pipeline stored the window
features (GeoTIFF float32); the run-time features are rounded the same way (see features.py).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InfSceneError

DEFAULT_DATA_DIR = (
    Path(__file__).resolve().parents[4] / "shared" / "data" / "iceplant" / "iceplant_data" / "extended_dataset_final_model"
)
LABEL = "iceplant"


def split_path(split: str, data_dir: Path | None = None) -> Path:
    """Path of the ``train`` or ``test`` CSV."""
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    return folder / f"extended_dataset_final_model_{split}.csv"


def load_split(split: str, names: Sequence[str], data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 of the named columns, y uint8) for one split."""
    path = split_path(split, data_dir)
    if not path.is_file():
        raise InfSceneError(f"iceplant label file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(row[name]) for name in names] for row in rows], dtype=np.float32)
    y = np.array([int(float(row[LABEL])) for row in rows], dtype=np.uint8)
    return x, y
