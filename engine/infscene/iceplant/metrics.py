"""Binary classification metrics as the paper reports them (Accuracy, Precision, Recall, F1, IoU, Eq. 18)."""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "iou")


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of 0/1 predictions against 0/1 labels, with the positive class = iceplant."""
    truth, pred = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    tp = float(np.sum(truth & pred))
    fp = float(np.sum(~truth & pred))
    fn = float(np.sum(truth & ~pred))
    tn = float(np.sum(~truth & ~pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / truth.size,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "iou": tp / (tp + fp + fn) if tp + fp + fn else 0.0,
    }
