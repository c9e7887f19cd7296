"""The shipped iceplant models load without pickle and reproduce their reported test metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from infscene.errors import InfSceneError
from infscene.iceplant.labels import load_split, split_path
from infscene.iceplant.metrics import binary_metrics
from infscene.iceplant.model import DEFAULT_MODEL_DIR, VARIANTS, load_model
from infscene.iceplant.train import export


@pytest.mark.parametrize("variant", VARIANTS)
def test_shipped_model_reproduces_its_reported_test_metrics(variant: str) -> None:
    if not split_path("test").exists():
        pytest.skip(f"shared iceplant labels not available: {split_path('test')}")
    model = load_model(variant)
    x, y = load_split("test", model.features)
    metrics = binary_metrics(y, model.predict(x))
    reported = model.info["test_metrics"]
    for name, value in reported.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name
    assert reported["f1"] > 0.70  # well above the baselines in MODEL_CARD.md


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # a converged fit is not the point
def test_numpy_model_equals_sklearn_predict_proba(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 9)).astype(np.float32) * 40 + 100
    y = (x[:, 0] + rng.normal(size=200) * 20 > 100).astype(np.uint8)
    scaler = StandardScaler().fit(x.astype(np.float64))
    mlp = MLPClassifier((16, 8), max_iter=300, random_state=0).fit(scaler.transform(x.astype(np.float64)), y)
    export("rgb", scaler, mlp).save(tmp_path)
    model = load_model("rgb", tmp_path)
    expected = mlp.predict_proba(scaler.transform(x.astype(np.float64)))[:, 1]
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(model.predict(x), mlp.predict(scaler.transform(x.astype(np.float64))))
    assert not list(tmp_path.glob("*.pkl")) and sorted(p.name for p in tmp_path.iterdir()) == ["rgb.json", "rgb.safetensors"]


def test_missing_model_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InfSceneError, match="iceplant model 'nir' not found") as err:
        load_model("nir", tmp_path)
    assert "\n" not in str(err.value)


def test_default_model_dir_is_the_shipped_resources() -> None:
    assert DEFAULT_MODEL_DIR.parts[-3:] == ("resources", "models", "iceplant")
