"""Shared fixtures: a tiny SR3 model (random weights, fixed seed) and the real scenes.

The tiny model makes the engine tests fast on a CPU; what they check (georeference, fusion
math, variance, determinism, error handling) does not depend on trained weights.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infscene.model import ModelConfig, SR3UNet, save_model

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
