"""The iceplant classifier as plain arrays: a small multilayer perceptron evaluated with numpy.

It is stored as ``<variant>.safetensors`` (standardisation and layer weights) plus
``<variant>.json`` (feature order, threshold, metrics, provenance) so that loading runs no code
(no pickle) and needs neither scikit-learn nor torch at run time. ``train.py`` fits it with
scikit-learn and exports it here; ``predict_proba`` reproduces scikit-learn's
``MLPClassifier.predict_proba`` (ReLU hidden layers, logistic output) in float64.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import InfSceneError

VARIANTS = ("nir", "rgb")
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "resources" / "models" / "iceplant"


@dataclass(frozen=True)
class IceplantModel:
    """Standardise, then ReLU layers, then a logistic unit: P(iceplant) per row of features."""

    variant: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(iceplant) for an (n, n_features) matrix whose columns follow ``self.features``."""
        h = (x.astype(np.float64) - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = np.maximum(h @ w + b, 0.0)
        logit = (h @ self.weights[-1] + self.biases[-1])[:, 0]
        return 0.5 * (1.0 + np.tanh(0.5 * logit))  # the logistic function without overflow

    def predict(self, x: np.ndarray) -> np.ndarray:
        """0/1 labels at the model's threshold."""
        return (self.predict_proba(x) > self.threshold).astype(np.uint8)

    def save(self, folder: Path) -> Path:
        """Write ``<variant>.safetensors`` and ``<variant>.json`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            tensors[f"layer{i}.weight"] = np.ascontiguousarray(w)
            tensors[f"layer{i}.bias"] = np.ascontiguousarray(b)
        save_file(tensors, str(folder / f"{self.variant}.safetensors"))
        config = {"variant": self.variant, "features": list(self.features), "layers": len(self.weights),
                  "hidden_activation": "relu", "output_activation": "logistic", "threshold": self.threshold,
                  **self.info}
        (folder / f"{self.variant}.json").write_text(json.dumps(config, indent=2) + "\n")
        return folder


def load_model(variant: str, folder: Path | None = None) -> IceplantModel:
    """Load one shipped (or user-trained) variant, with a one-line message when it is missing."""
    if variant not in VARIANTS:
        raise InfSceneError(f"unknown iceplant model variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config_path, weights_path = folder / f"{variant}.json", folder / f"{variant}.safetensors"
    if not (config_path.is_file() and weights_path.is_file()):
        raise InfSceneError(
            f"iceplant model '{variant}' not found in {folder} (need {variant}.json and {variant}.safetensors); "
            "train it with: python -m infscene.iceplant.train --out DIR"
        )
    try:
        config = json.loads(config_path.read_text())
        tensors = load_file(str(weights_path))
        layers = int(config.pop("layers"))
        return IceplantModel(
            variant=config.pop("variant"),
            features=tuple(config.pop("features")),
            mean=tensors["mean"],
            scale=tensors["scale"],
            weights=tuple(tensors[f"layer{i}.weight"] for i in range(layers)),
            biases=tuple(tensors[f"layer{i}.bias"] for i in range(layers)),
            threshold=float(config.pop("threshold")),
            info={k: v for k, v in config.items() if k not in ("hidden_activation", "output_activation")},
        )
    except Exception as exc:  # bad JSON, a missing key or tensor, a file that is not safetensors: whatever it raises
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InfSceneError(f"iceplant model '{variant}' in {folder} is unreadable ({type(exc).__name__}: {detail}); "
                            "reinstall it or train it again with: python -m infscene.iceplant.train --out DIR") from exc
