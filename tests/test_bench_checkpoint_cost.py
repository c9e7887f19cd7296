"""bench/checkpoint_cost.py measures the run checkpoint the engine really keeps: one manifest (with the store's
checksums) per finished step, plus the input's content hash and the finished sample, and a kept checkpoint that a
resume's check accepts."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scenes import FIXTURES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import checkpoint_cost  # noqa: E402


def test_a_run_writes_a_checksummed_manifest_per_step_and_its_checkpoint_verifies(tmp_path: Path) -> None:
    costs = checkpoint_cost.run_costs("e2diffsr", 24, tmp_path / "run", scene=FIXTURES / "naip_nd_5m_64.tif")

    steps = 4  # the bundled e2diffsr's default
    assert costs["manifests_written"] == 1 + steps + 1  # the input's content hash, each step, the finished sample
    assert costs["output_mp"] == pytest.approx(96 * 96 / 1e6, abs=1e-3)
    assert costs["checkpoint_store_mb"] > 0
    for figure in ("checksums_on_write_s", "content_hash_s", "checksums_on_resume_s"):
        assert 0 < costs[figure] < costs["run_s"], figure
