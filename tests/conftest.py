"""Shared fixtures: a tiny SR3 model (random weights, fixed seed) and the real scenes.

The tiny model makes the engine tests fast on a CPU; what they check (georeference, fusion
math, variance, determinism, error handling) does not depend on trained weights.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from infscene.models.folder import save_model
from infscene.models.sr3.network import ModelConfig, SR3UNet

from scenes import FIXTURES


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(name="tiny-test", base_channels=8, channel_mults=[1, 2], patch_size=32, norm_groups=4)
    return save_model(SR3UNet(config), tmp_path_factory.mktemp("model"))


@pytest.fixture()
def naip() -> Path:
    """64x64 window of real NAIP (North Dakota 2010, 5 m, R,G,B,NIR uint8, nodata 0)."""
    return FIXTURES / "naip_nd_5m_64.tif"


@pytest.fixture()
def planet() -> Path:
    """48x48 window of a real Planet monthly basemap (int16, 4 bands, EPSG:3857)."""
    return FIXTURES / "planet_sn7_48.tif"


@pytest.fixture()
def rapideye_rgba() -> Path:
    """48x48 corner of a RapidEye visual clip (RGBA uint8) with transparent pixels."""
    return FIXTURES / "rapideye_rgba_48.tif"


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own status before QGIS tears itself down.

    QGIS 3.22 (Debian) crashes with SIGSEGV while exiting after the plugin tests have created and
    deleted tasks and layers, although every test passed; that turns a green run into exit 139.
    The results are already reported when this hook runs.
    """
    if "qgis.core" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
