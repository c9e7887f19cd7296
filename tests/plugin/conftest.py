"""Fixtures for the QGIS plugin tests: the real engine (from the checkout's .venv), a tiny model,
the committed NAIP scene and a 24 x 24-pixel window of it, so every engine run takes seconds."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import torch
from osgeo import gdal
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsSettings

from infscene.models.e2diffsr.network import E2DiffSR
from infscene.modelformat.folder import save_model
from infscene_qgis.engine_locator import find_engine_python
from infscene_qgis.processing_provider import InfSceneProvider
from plugin_helpers import NAIP
from test_e2diffsr import small_config

# QGIS computes statistics for the renderers; without this GDAL would leave .aux.xml files
# beside the committed fixtures.
gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")


@pytest.fixture(autouse=True)
def clean_settings() -> Iterator[None]:
    """Each test starts without InfScene settings (pytest-qgis keeps them in ./.qgis-settings)."""
    QgsSettings().remove("infscene")
    yield
    QgsSettings().remove("infscene")


@pytest.fixture(scope="session")
def engine_python() -> str:
    """The real engine interpreter, found the way the plugin finds it."""
    return find_engine_python()


@pytest.fixture(scope="module")
def provider(qgis_processing: None) -> Iterator[InfSceneProvider]:  # noqa: ARG001 - initialises Processing
    """Registered for one test module only, so the plugin lifecycle test can register its own."""
    registered = InfSceneProvider()
    QgsApplication.processingRegistry().addProvider(registered)
    yield registered
    QgsApplication.processingRegistry().removeProvider(registered)


@pytest.fixture(scope="session")
def iceplant_engine(engine_python: str) -> str:
    """The engine, provided it already has the iceplant subcommand (built in a separate issue)."""
    probe = subprocess.run([engine_python, "-m", "infscene", "iceplant", "--help"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this engine has no 'iceplant' subcommand yet")
    return engine_python


@pytest.fixture(scope="session")
def e2diffsr_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random-weight e2diffsr model (config `"family": "e2diffsr"`), made with the engine in the test
    process only: the plugin itself never imports torch."""
    torch.manual_seed(0)
    return save_model(E2DiffSR(small_config()), tmp_path_factory.mktemp("e2diffsr_model"))


@pytest.fixture()
def naip_layer(qgis_new_project: QgsProject) -> QgsRasterLayer:  # noqa: ARG001 - a clean project per test
    layer = QgsRasterLayer(str(NAIP), "naip", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer
