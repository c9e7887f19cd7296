"""Spreading patch batches over several devices: which devices a spec names, and that the output,
progress and cancellation do not depend on how many devices share the work."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from infscene.errors import Cancelled, InfSceneError
from infscene.diffusion.fusion import FusionMode
from infscene.execution.devices import resolve_device, resolve_devices
from infscene.plan import SROptions
from infscene.run import super_resolve
from infscene.execution.workers import DenoiserPool


@pytest.fixture()
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def names(spec: str) -> list[str]:
    return [str(d) for d in resolve_devices(spec)]


def test_devices_on_a_machine_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lanes = ["cpu"] * torch.get_num_threads()  # one lane per thread, each model call on one (determinism.py)
    assert names("auto") == lanes and names("cpu") == lanes and names("cpu, cpu") == ["cpu", "cpu"]
    with pytest.raises(InfSceneError, match="no CUDA GPU"):
        resolve_devices("cuda")
    with pytest.raises(InfSceneError, match="unknown device 'gpu'"):
        resolve_devices("gpu")


def test_devices_on_a_machine_with_two_gpus(two_gpus: None) -> None:
    assert names("auto") == names("cuda") == ["cuda:0", "cuda:1"]
    assert names("cuda:1") == ["cuda:1"] and names("cuda:1,cuda:0") == ["cuda:1", "cuda:0"]
    assert str(resolve_device("auto")) == "cuda:0"  # training and timing use the first
    with pytest.raises(InfSceneError, match="cuda:2 does not exist: torch sees 2 CUDA GPU"):
        resolve_devices("cuda:0,cuda:2")


def test_pool_returns_results_in_order_whichever_device_finishes_first() -> None:
    def work(device: str, item: int) -> tuple[int, str]:
        time.sleep(0.02 if device == "slow" else 0.0)
        return item, device

    with DenoiserPool(["slow", "fast"]) as pool:
        done = list(pool.map(work, range(12)))
    assert [item for item, _ in done] == list(range(12))
    assert {device for _, device in done} == {"slow", "fast"}


def test_an_error_on_a_device_is_raised_at_its_item() -> None:
    def work(device: str, item: int) -> int:
        if item == 5:
            raise Cancelled()
        return item

    with DenoiserPool(["a", "b"]) as pool, pytest.raises(Cancelled):
        assert list(pool.map(work, range(10)))


def _run(naip: Path, model: Path, out: Path, device: str, mode: FusionMode, **kw) -> np.ndarray:
    options = SROptions(scale=2, steps=3, patch=32, overlap=8, model_dir=model, device=device, mode=mode,
                        seed=5, batch_size=3, **kw)
    with rasterio.open(super_resolve(naip, out, options)) as dst:
        return dst.read()


@pytest.mark.parametrize("mode", list(FusionMode))
def test_two_workers_give_the_output_of_one(mode: FusionMode, naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    one = _run(naip, tiny_model_dir, tmp_path / "one.tif", "cpu", mode)
    two = _run(naip, tiny_model_dir, tmp_path / "two.tif", "cpu,cpu", mode)
    np.testing.assert_array_equal(two, one)


def test_progress_and_cancel_with_two_workers(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    seen = []
    options = SROptions(scale=2, steps=3, patch=32, overlap=8, model_dir=tiny_model_dir, device="cpu,cpu", batch_size=2,
                        mode=FusionMode.INDEPENDENT)
    super_resolve(naip, tmp_path / "sr.tif", options, progress=seen.append)
    assert [p.done for p in seen] == sorted(p.done for p in seen) and seen[-1].done == seen[-1].total

    events = []
    with pytest.raises(Cancelled):
        super_resolve(naip, tmp_path / "cancelled.tif", options, progress=events.append, is_cancelled=lambda: len(events) >= 2)
    assert 2 <= len(events) < len(seen)  # stopped by a worker mid-run
    assert not (tmp_path / "cancelled.tif").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif"]
