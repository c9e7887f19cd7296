"""Shared fixtures: a tiny SR3 model (random weights, fixed seed) and the real scenes.

The tiny model makes the engine tests fast on a CPU; what they check (georeference, fusion
math, variance, determinism, error handling) does not depend on trained weights.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from infscene.modelformat.folder import save_model
from infscene.models.sr3.network import ModelConfig, SR3UNet

from scenes import FIXTURES


# The variables that change what the engine computes or where it looks. Only these are restored, one by one: writing
# the whole environment back (clear, then update) while QGIS's and GDAL's threads read it crashed the suite (SIGSEGV
# in setenv), and the variables QGIS sets for itself at start are its own.
ENGINE_ENVIRONMENT = ("INFSCENE_", "OMP_", "MKL_", "ATEN_", "ONEDNN_", "TORCH_", "DASK_", "GDAL_", "CPL_", "PROJ_")


@pytest.fixture(autouse=True)
def _no_global_state_left_behind() -> Iterator[None]:
    """Each test finds and leaves torch's threads, the global RNGs, the engine's environment variables and the working
    folder as they were, so no test's result depends on which ran before it (the suite runs in random order: pytest-randomly).

    An in-process Dask worker sets one torch thread for the whole process (execution/scaleout.py); a test run after
    it on one thread once saw other bits from a kernel chosen by thread count (issue 33).
    """
    threads, folder = torch.get_num_threads(), os.getcwd()
    environment = {name: value for name, value in os.environ.items() if name.startswith(ENGINE_ENVIRONMENT)}
    torch_rng, numpy_rng = torch.random.get_rng_state(), np.random.get_state()
    yield
    torch.set_num_threads(threads)
    torch.random.set_rng_state(torch_rng)
    np.random.set_state(numpy_rng)
    if os.getcwd() != folder:
        os.chdir(folder)
    for name in [name for name in os.environ if name.startswith(ENGINE_ENVIRONMENT) and name not in environment]:
        del os.environ[name]
    for name, value in environment.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


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


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The shuffled order's seed at the end, beside the result (-q hides pytest-randomly's header line)."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"test order shuffled by pytest-randomly: repeat it with --randomly-seed={seed}")


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
