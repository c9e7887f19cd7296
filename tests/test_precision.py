"""--precision: which arithmetic a run uses (bf16 autocast only where the hardware runs it natively), and that the
shipped model's output under bf16 stays within a fraction of a grey level of float32 on real imagery."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from infscene.errors import InfSceneError
from infscene.models import precision
from infscene.models.precision import BF16, FP32, resolve_precision
from infscene.plan import SROptions, plan_run
from infscene.run import super_resolve

CPU = torch.device("cpu")


@pytest.mark.parametrize("native, requested, expected", [
    (True, "auto", BF16), (False, "auto", FP32), (True, "fp32", FP32), (False, "fp32", FP32), (True, "bf16", BF16),
])
def test_auto_takes_bf16_only_on_a_cpu_that_runs_it_natively(monkeypatch: pytest.MonkeyPatch, native: bool,
                                                             requested: str, expected: str) -> None:
    monkeypatch.setattr(precision, "bf16_native", lambda device: native)
    assert resolve_precision(requested, [CPU]) == expected


def test_bf16_is_refused_in_one_line_where_it_would_be_emulated(monkeypatch: pytest.MonkeyPatch, naip: Path, tmp_path: Path) -> None:
    monkeypatch.setattr(precision, "bf16_native", lambda device: False)
    with pytest.raises(InfSceneError, match="no native bf16 arithmetic"):
        plan_run(naip, SROptions(scale=4, precision="bf16"), tmp_path / "o.tif")
    with pytest.raises(InfSceneError, match="precision must be auto, fp32 or bf16"):
        resolve_precision("fp16", [CPU])
    assert list(tmp_path.iterdir()) == []


def test_a_gpu_keeps_fp32_under_auto_until_it_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "bf16_native", lambda device: True)
    assert resolve_precision("auto", [torch.device("cuda:0")]) == FP32


@pytest.mark.skipif(not precision.bf16_native(CPU), reason="this CPU has no native bf16")
def test_bf16_output_stays_within_a_fraction_of_a_grey_level_of_fp32(naip: Path, tmp_path: Path) -> None:
    outputs = {}
    for name in (FP32, BF16):
        path = super_resolve(naip, tmp_path / f"{name}.tif", SROptions(scale=4, bands=[1, 2, 3], precision=name))
        with rasterio.open(path) as ds:
            outputs[name] = ds.read().astype(np.float64)
            assert ds.tags()["INFSCENE_PRECISION"] == name
    difference = np.abs(outputs[FP32] - outputs[BF16])
    assert 0 < difference.mean() < 0.25 and np.percentile(difference, 99) <= 2  # rounding, not a different image
