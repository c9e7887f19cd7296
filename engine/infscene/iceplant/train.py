"""Train and export the two iceplant models, and report them next to simple baselines.

    python -m infscene.iceplant.train --out resources/models/iceplant [--data DIR] [--select]

For each variant (``nir``: r, g, b, nir, ndvi and their 13x13 window features; ``rgb``: r, g, b
and theirs, for RGB super-resolved output) it fits a multilayer perceptron on the train split,
exports it without pickle (model.py), and prints Accuracy, Precision, Recall, F1 and IoU on the
provided test split for the model and for baselines: an NDVI threshold (cut and side chosen on train; nir
only), logistic regression on the same features, and the original project's random forest
(100 trees). ``--select`` first re-runs the 5-fold cross-validation on train that chose the
network size and L2 penalty below; the test split plays no part in that choice.
"""
from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .features import feature_names
from .labels import DEFAULT_DATA_DIR, load_split
from .metrics import METRIC_NAMES, binary_metrics
from .model import IceplantModel

HIDDEN = (128, 128)
ALPHA = 1e-2
GRID = [((32,), 1e-2), ((64, 64), 1e-3), ((64, 64), 1e-2), ((128, 128), 1e-3), ((128, 128), 1e-2), ((128, 128), 1e-1)]
SEED = 0


def make_mlp(hidden: tuple[int, ...] = HIDDEN, alpha: float = ALPHA) -> MLPClassifier:
    return MLPClassifier(hidden, alpha=alpha, max_iter=2000, random_state=SEED)


def export(variant: str, scaler: StandardScaler, mlp: MLPClassifier) -> IceplantModel:
    """The fitted scaler and perceptron as plain arrays (model.py evaluates them with numpy)."""
    return IceplantModel(
        variant=variant,
        features=feature_names(variant == "nir"),
        mean=scaler.mean_,
        scale=scaler.scale_,
        weights=tuple(mlp.coefs_),
        biases=tuple(mlp.intercepts_),
        info={"hidden_layers": list(mlp.hidden_layer_sizes), "alpha": mlp.alpha, "seed": SEED},
    )


def fit_model(variant: str, x: np.ndarray, y: np.ndarray) -> IceplantModel:
    """Standardise, fit the perceptron on float64 features and export both."""
    scaler = StandardScaler().fit(x.astype(np.float64))
    mlp = make_mlp().fit(scaler.transform(x.astype(np.float64)), y)
    return export(variant, scaler, mlp)


def ndvi_rule(ndvi_train: np.ndarray, y_train: np.ndarray) -> tuple[float, bool]:
    """The NDVI cut and side (True: iceplant above it) with the best F1 on the train split."""
    candidates = np.unique(ndvi_train)
    best = max(
        ((binary_metrics(y_train, (ndvi_train > t) if above else (ndvi_train <= t))["f1"], float(t), above)
         for t in candidates for above in (True, False)),
    )
    return best[1], best[2]


def baselines(variant: str, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Fitted baseline predictors (features matrix -> 0/1), keyed by the name shown in the table."""
    names = feature_names(variant == "nir")
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    if "ndvi" in names:
        col = names.index("ndvi")
        cut, above = ndvi_rule(x[:, col], y)
        rule = f"NDVI {'>' if above else '<='} {cut:.3f} (chosen on train)"
        out[rule] = lambda xs: (xs[:, col] > cut) if above else (xs[:, col] <= cut)
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, y)
    out["logistic regression"] = logistic.predict
    forest = RandomForestClassifier(n_estimators=100, random_state=42).fit(x, y)
    out["random forest, 100 trees (original project's model family)"] = forest.predict
    return out


def select(variant: str, x: np.ndarray, y: np.ndarray) -> None:
    """Print the 5-fold cross-validated F1 on train of every (hidden layers, alpha) in GRID."""
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
    for hidden, alpha in GRID:
        model = make_pipeline(StandardScaler(), make_mlp(hidden, alpha))
        f1 = cross_val_score(model, x.astype(np.float64), y, cv=folds, scoring="f1")
        print(f"  {variant} hidden={hidden} alpha={alpha:g}: CV F1 {f1.mean():.4f} +- {f1.std():.4f}", flush=True)


def table_row(name: str, metrics: dict[str, float]) -> str:
    return "| " + name + " | " + " | ".join(f"{metrics[m]:.4f}" for m in METRIC_NAMES) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infscene.iceplant.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for <variant>.safetensors/.json")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="folder with the train/test CSVs")
    parser.add_argument("--select", action="store_true", help="also print the cross-validation that chose the network")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    print("| variant / model | accuracy | precision | recall | F1 | IoU |\n|---|---|---|---|---|---|")
    for variant in ("nir", "rgb"):
        names = feature_names(variant == "nir")
        x, y = load_split("train", names, args.data)
        x_test, y_test = load_split("test", names, args.data)
        if args.select:
            select(variant, x, y)
        model = fit_model(variant, x, y)
        metrics = binary_metrics(y_test, model.predict(x_test))
        replace(model, info={**model.info, "test_metrics": metrics}).save(args.out)
        print(table_row(f"**{variant}: MLP {HIDDEN} (shipped)**", metrics), flush=True)
        for name, predict in baselines(variant, x, y).items():
            print(table_row(f"{variant}: {name}", binary_metrics(y_test, predict(x_test))), flush=True)
    print(f"models written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
