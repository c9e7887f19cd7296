"""No silent wrong output from a broken model (issue 22): garbage weights, a model that gives one constant, and a
config too deep for the machine are each one line naming the model folder, and nothing is written.

Before: a folder with a valid safetensors header and random tensor bytes ran to exit 0 with an output that was 1
everywhere, and `res_blocks: 1000000` gave no answer in 120 s (the size guard covered width, not depth). Since
issue 35 such weights are refused by the folder's card before the run (test_model_card.py has the rest).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from infscene.errors import InfSceneError
from infscene.modelformat import check as model_check
from infscene.modelformat.files import CONFIG_FILE, WEIGHTS_FILE
from infscene.modelformat.files import DEFAULT_MODEL_DIR
from infscene.models.registry import check_model, record_card
from infscene.plan import SROptions
from infscene.run import super_resolve

from scenes import FIXTURES

NAIP = FIXTURES / "naip_nd_5m_64.tif"


def _options(model: Path, **changes: object) -> SROptions:
    return replace(SROptions(scale=2.0, steps=3, patch=32, overlap=8, model_dir=model, device="cpu", bands=[1, 2, 3]),
                   **changes)


def _copy(model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    return folder


def _garble(folder: Path) -> None:
    """A valid safetensors header followed by random tensor bytes."""
    weights = bytearray((folder / WEIGHTS_FILE).read_bytes())
    header = 8 + struct.unpack("<Q", weights[:8])[0]
    weights[header:] = os.urandom(len(weights) - header)
    (folder / WEIGHTS_FILE).write_bytes(bytes(weights))


def test_garbage_weights_are_refused_by_the_card_before_the_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    _garble(folder)
    with pytest.raises(InfSceneError, match=rf"^model weights {folder / WEIGHTS_FILE} are not the ones its card "
                                            r"describes .*record a new card") as error:
        super_resolve(NAIP, tmp_path / "out.tif", _options(folder))
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no output, no checkpoint


def test_garbage_weights_without_a_card_are_refused_by_the_probe(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    config = json.loads((folder / CONFIG_FILE).read_text())
    del config["card"]  # a folder written before cards
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    _garble(folder)
    with pytest.raises(InfSceneError, match=rf"^the model in {folder} gives (non-finite values|noise).* on the probe "
                                            "image.*check or replace the model folder"):
        super_resolve(NAIP, tmp_path / "out.tif", _options(folder))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_model_that_gives_one_constant_stops_the_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Weights whose owner vouches for them (a card recorded for them) still meet the run's own output check."""
    folder = _copy(tiny_model_dir, tmp_path)
    state = load_file(str(folder / WEIGHTS_FILE))
    last = max(name for name in state if name.startswith("out.") and name.endswith(".weight"))
    state[last] = torch.zeros_like(state[last])
    state[last.replace("weight", "bias")] = torch.full_like(state[last.replace("weight", "bias")], 1e6)
    save_file(state, str(folder / WEIGHTS_FILE))
    record_card(folder)
    with pytest.raises(InfSceneError, match=rf"^the model in {folder} gives one constant value over patches whose input varies"):
        super_resolve(NAIP, tmp_path / "out.tif", _options(folder, lr_consistency=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("family, change", [("sr3", {"res_blocks": 1_000_000}), ("e2diffsr", {"denoiser_blocks": 1_000_000})])
def test_a_config_too_deep_is_refused_before_anything_is_built(family: str, change: dict, tiny_model_dir: Path,
                                                               tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir if family == "sr3" else DEFAULT_MODEL_DIR, tmp_path)
    config = folder / CONFIG_FILE
    config.write_text(json.dumps({**json.loads(config.read_text()), **change}))
    start = time.perf_counter()
    with pytest.raises(InfSceneError, match=r"would have more than 20,000 tensors .*check its depth"):
        check_model(folder)
    assert time.perf_counter() - start < 10  # it gave no answer in 120 s before


def test_the_parameter_limit_follows_the_machines_memory(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                                         tmp_path: Path) -> None:
    pages = {"SC_PHYS_PAGES": 1024, "SC_PAGE_SIZE": 1024}  # a machine of 1 MB: 131,072 float32 weights, twice over
    monkeypatch.setattr(model_check.os, "sysconf", pages.__getitem__)
    assert model_check.parameter_limit()[0] == 1024**2 // 8
    folder = _copy(tiny_model_dir, tmp_path)
    config = folder / CONFIG_FILE
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_channels": 64}))
    with pytest.raises(InfSceneError, match=r"more than 131,072 parameters .* more than this machine's 1.0 MB of memory holds"):
        check_model(folder)
