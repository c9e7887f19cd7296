"""bench/quality.py: the bicubic+proj baseline, the --details methods and the summary the docs table is written from.

The baseline is checked on a real NAIP window against the definition of the exact LR projection (every block of
output pixels whose centres fall in one LR pixel has that pixel's mean); the summary on rows whose answers are
known, so that the margins, seam ratio and table columns are checked without running a model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio

from infscene.models.e2diffsr.decode import owner
from infscene.models.e2diffsr.network import E2DiffSR, E2DiffSRConfig
from infscene.modelformat.folder import save_model
from infscene.modelformat.files import DEFAULT_MODEL_DIR

from scenes import FIXTURES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import quality  # noqa: E402


@pytest.fixture(scope="module")
def low() -> np.ndarray:
    """The RGB bands of the 64x64 real NAIP fixture, float32 with 8-bit values (what the methods see)."""
    with rasterio.open(FIXTURES / "naip_nd_5m_64.tif") as ds:
        return ds.read([1, 2, 3]).astype(np.float32)


def block_means(image: np.ndarray, lr_size: int) -> np.ndarray:
    """The mean of each LR pixel's block of output pixels, summed independently of the engine's einsum."""
    rows, cols = owner(lr_size, image.shape[1]), owner(lr_size, image.shape[2])
    sums = np.zeros((image.shape[0], lr_size, lr_size))
    np.add.at(sums, (slice(None), rows[:, None], cols[None, :]), image)
    return sums / (np.bincount(rows)[:, None] * np.bincount(cols)[None, :])


@pytest.mark.parametrize("size", [128, 237, 256])  # 2x, 3.7x (blocks of 3 and 4 pixels), 4x
def test_the_lr_projection_gives_every_block_its_lr_pixel_as_mean(low: np.ndarray, size: int) -> None:
    up = np.stack([cv2.resize(b, (size, size), interpolation=cv2.INTER_CUBIC) for b in low])
    projected = quality.lr_projected(up, low)
    np.testing.assert_allclose(block_means(projected, 64), low, atol=1e-3)
    # each block is shifted as a whole: the detail inside it is bicubic's
    shift, rows, cols = projected - up, owner(64, size), owner(64, size)
    np.testing.assert_allclose(shift, block_means(shift, 64)[:, rows][:, :, cols], atol=1e-3)


def test_bicubic_proj_is_8_bit_and_closer_to_its_input_than_bicubic(low: np.ndarray) -> None:
    plain = quality.baseline(quality.Method("bicubic", "bicubic"), low, 237)
    projected = quality.baseline(quality.Method("bicubic+proj", "bicubic", lr_projection=True), low, 237)
    for output in (plain, projected):
        assert output.min() >= 0 and output.max() <= 255 and np.array_equal(output, np.rint(output))
    assert np.abs(block_means(projected, 64) - low).mean() < 0.5 * np.abs(block_means(plain, 64) - low).mean()


def test_a_detail_the_model_cannot_take_is_skipped_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A model without a texture head: 0 and 1 run, 0.5 is named on stderr and dropped; the shipped one takes all three.
    --self-ensemble adds each model's detail-0 row with the option."""
    plain = save_model(E2DiffSR(E2DiffSRConfig(name="no-head")), tmp_path / "no-head")
    args = argparse.Namespace(model=[plain, None], modes=["bicubic", "vcf"], details=[0.0, 0.5, 1.0], self_ensemble=True)
    found = quality.methods(args)
    labels = [m.label for m in found]
    shipped = DEFAULT_MODEL_DIR.resolve().name
    assert labels == ["bicubic", "bicubic+proj", "no-head/vcf", "no-head/detail=0", "no-head/detail=1",
                      "no-head/detail=0+ensemble", f"{shipped}/vcf", f"{shipped}/detail=0", f"{shipped}/detail=0.5",
                      f"{shipped}/detail=1", f"{shipped}/detail=0+ensemble"]
    assert [(m.detail, m.self_ensemble) for m in found if m.label.endswith("+ensemble")] == [(0.0, True)] * 2
    assert "no-head/detail=0.5 skipped" in capsys.readouterr().err


def test_details_outside_0_to_1_are_refused() -> None:
    assert quality.detail_value("0.25") == 0.25
    with pytest.raises(argparse.ArgumentTypeError):
        quality.detail_value("1.5")


def row(method: str, psnr: float, seam: float = 1.2, image: str = "a") -> dict:
    """One image's row of quality.run, with the measures the summary averages."""
    return {"scene": "s", "image": image, "scale": 4.0, "method": method, "steps": None,
            "model": None if method.startswith("bicubic") else "m", "psnr": psnr, "ssim": 0.5, "hf_ratio": 0.3, "seam": seam, "seam_truth": 1.0,
            "seam_lattice": 0.8, "seam_lattice_truth": 1.0, "lr_l1": 0.2,
            "mp_per_s": 1.0, "peak_ram_mb": None}


def test_the_summary_carries_the_means_and_both_margins() -> None:
    rows = [row("bicubic", 24.0), row("bicubic", 26.0, image="b"),
            row("bicubic+proj", 25.5), row("bicubic+proj", 25.5, image="b"),
            row("m/vcf", 26.0, seam=1.0), row("m/vcf", 27.0, seam=float("nan"), image="b")]
    args = argparse.Namespace(speed_reference=None, perceptual=False, fid_crop=64)
    summary = {e["method"]: e for e in quality.summarise(rows, args, {}, {})}
    model = summary["m/vcf"]
    assert (model["psnr"], model["psnr_vs_bicubic"], model["psnr_vs_bicubic_proj"]) == (26.5, 1.5, 1.0)
    assert model["seam"] == 1.0 and model["seam_ratio"] == 1.0  # the NaN of a crop without patch borders left out
    assert model["seam_vs_lattice"] == 1.25
    assert summary["bicubic"]["psnr_vs_bicubic"] == 0.0
    table = quality.summary_table(list(summary.values())).splitlines()
    assert table[0] == ("| scene | scale | method | PSNR | dB vs bicubic | dB vs bicubic+proj | SSIM | hf | KID x1000 "
                        "| seam ratio | seam vs lattice | lr_l1 | LR grid excess | MP/s |")
    assert table[-1].startswith("| s | 4 | m/vcf | 26.50 | +1.50 | +1.00 | 0.5000 | 0.300 |  | 1.000 | 1.250 | 0.200 |  | 1 |")


def test_the_lattice_lines_are_the_borders_period_without_the_borders() -> None:
    assert quality.lattice_lines([192, 256, 448], 512) == [64, 128, 320, 384]  # gcd 64
    assert quality.lattice_lines([40, 96], 130) == [8, 16, 24, 32, 48, 56, 64, 72, 80, 88, 104, 112, 120, 128]
    assert quality.lattice_lines([], 512) == [] and quality.lattice_lines([7, 9], 20) == []  # no period: nothing to score


def test_the_frontier_reads_each_models_details_in_order_and_the_projection_baseline(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import frontier

    rows = [{"scene": scene, "scale": 4.0, "method": method, "hf_ratio": hf, "psnr_vs_bicubic": db}
            for scene in frontier.SCENES
            for method, hf, db in [("bicubic", 0.03, 0.0), ("bicubic+proj", 0.04, 0.19), ("m/detail=1", 0.30, -0.1),
                                   ("m/detail=0", 0.19, 0.35), ("other/detail=0.5", 0.9, 9.0)]]
    rows.append({"scene": "sr_dev", "scale": 2.0, "method": "m/detail=0.5", "hf_ratio": 0.5, "psnr_vs_bicubic": 5.0})
    summary = tmp_path / "s_summary.json"
    summary.write_text(json.dumps(rows))
    found, projection = frontier.curves([frontier.parse_model(f"M={summary}:m")], 4.0)
    assert [c.scene for c in found] == list(frontier.SCENES) and all(c.label == "M" for c in found)
    assert found[0].points == [(0.0, 0.19, 0.35), (1.0, 0.30, -0.1)]  # by detail; other models and scales left out
    assert projection == {scene: 0.19 for scene in frontier.SCENES}
    with pytest.raises(argparse.ArgumentTypeError, match="LABEL=SUMMARY.json:MODEL"):
        frontier.parse_model("no-label.json")
    frontier.draw(found, projection, 4.0, tmp_path / "plane.png")
    assert cv2.imread(str(tmp_path / "plane.png")).shape[2] == 3


def test_the_lr_grid_measure_sees_block_steps_and_not_a_smooth_ramp() -> None:
    """Issue 38's measure: steps across the LR pixel borders over steps elsewhere (4x: every 4th column and row)."""
    ramp = np.broadcast_to(np.arange(64, dtype=np.float64)[None, None, :] + np.arange(64)[None, :, None], (3, 64, 64))
    assert quality.lr_grid(ramp, (16, 16)) == pytest.approx(1.0, abs=1e-12)
    blocks = np.random.default_rng(0).normal(size=(3, 16, 16)).repeat(4, axis=1).repeat(4, axis=2)
    assert quality.lr_grid(0.1 * ramp + 0.25 * blocks, (16, 16)) > 1.5  # a block-constant correction's grid
