"""The engine stays outside QGIS: the plugin never imports torch or rasterio, and it finds the
engine's interpreter in the documented order."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infscene_qgis import engine_locator
from infscene_qgis.engine_locator import EngineNotFound, find_engine_python
from infscene_qgis.engine_runner import EngineRunner
from infscene_qgis.settings import save_engine_python

ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_whole_plugin_imports_neither_torch_nor_rasterio():
    script = (
        "import sys\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False)\n"
        "app.initQgis()\n"
        "import infscene_qgis.plugin\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'rasterio', 'infscene'})\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_setting_wins_over_environment_variable(monkeypatch, engine_python):
    monkeypatch.setenv(engine_locator.ENV_VAR, "/nonexistent/python")
    save_engine_python(engine_python)
    assert find_engine_python() == engine_python


def test_broken_environment_variable_is_reported_not_skipped(monkeypatch):
    monkeypatch.setenv(engine_locator.ENV_VAR, "/nonexistent/python")
    with pytest.raises(EngineNotFound, match="INFSCENE_PYTHON.*/nonexistent/python"):
        find_engine_python()


def test_checkout_venv_is_the_fallback(monkeypatch):
    monkeypatch.delenv(engine_locator.ENV_VAR, raising=False)
    assert find_engine_python() == str(ROOT / ".venv" / "bin" / "python")


def test_without_any_engine_the_user_is_told_how_to_make_one(monkeypatch, tmp_path):
    monkeypatch.delenv(engine_locator.ENV_VAR, raising=False)
    monkeypatch.setattr(engine_locator, "checkout_python", lambda: tmp_path / "missing" / "python")
    with pytest.raises(EngineNotFound, match="python3 -m venv.*pip install.*docs/plugin.md"):
        find_engine_python()


def test_check_reports_versions_device_and_model(engine_python, tiny_model_dir):
    info = EngineRunner(engine_python).info(str(tiny_model_dir))
    devices = info["device_auto"].split(",")
    assert devices == ["cpu"] or all(d.startswith("cuda:") for d in devices)
    assert info["gpu_count"] == (len(devices) if devices != ["cpu"] else 0)
    assert info["torch"]
    assert info["model"]["name"] == "tiny-test"
