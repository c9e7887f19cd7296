"""End-to-end runs on real scenes: georeference, values, nodata, alpha, seams, determinism, memory maps."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from infscene.diffusion import grid as grid_module
from infscene.diffusion.fusion import FusionMode
from infscene.diffusion.grid import axis_starts
from infscene.raster.metrics import seam_score
from infscene.plan import plan_run, SROptions
from infscene.run import super_resolve


def _options(model: Path, **kw) -> SROptions:
    defaults = dict(scale=2, steps=3, patch=32, overlap=8, model_dir=model)
    return SROptions(**{**defaults, **kw})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_grid_dtype_bands_and_nodata_follow_the_input(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    before = _sha(naip)
    with rasterio.open(naip) as src:
        left, top = src.xy(8, 10, offset="ul")
        right, bottom = src.xy(40, 50, offset="ul")
        bounds = (left, bottom, right, top)
        out = super_resolve(naip, tmp_path / "sr.tif", _options(tiny_model_dir, scale=2, bounds=bounds))
        with rasterio.open(out) as dst:
            assert dst.crs == src.crs
            assert tuple(dst.bounds) == pytest.approx(bounds)
            assert dst.res == pytest.approx((src.res[0] / 2, src.res[1] / 2))
            assert (dst.width, dst.height) == (80, 64)
            assert dst.dtypes == src.dtypes and dst.nodata == src.nodata == 0
            assert dst.colorinterp[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
            assert dst.colorinterp[3] == src.colorinterp[3]
            assert dst.profile["tiled"] and dst.profile["compress"] == "deflate"
            sr = dst.read().astype(float)
            lr = src.read(window=src.window(*bounds)).astype(float)
    assert _sha(naip) == before  # the input is never modified
    # Band order kept: at a coarse scale (4x4 input pixels) each output band follows the same input band.
    # The test model is untrained, so only the low frequencies (tied to the input) are meaningful.
    sr_blocks = sr.reshape(4, 8, 8, 10, 8).mean(axis=(2, 4))
    lr_blocks = lr.reshape(4, 8, 4, 10, 4).mean(axis=(2, 4))
    for band in range(4):
        assert np.corrcoef(sr_blocks[band].ravel(), lr_blocks[band].ravel())[0, 1] > 0.95
    assert np.abs(sr_blocks - lr_blocks).mean() < 10


def test_non_integer_target_resolution_keeps_bounds_and_int16_values(planet: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = super_resolve(planet, tmp_path / "sr.tif", _options(tiny_model_dir, scale=None, target_res=1.7, bands=[1, 2, 3]))
    with rasterio.open(planet) as src, rasterio.open(out) as dst:
        assert dst.count == 3 and dst.dtypes[0] == "int16"
        assert dst.width == round(48 * src.res[0] / 1.7) and dst.height == round(48 * src.res[1] / 1.7)
        assert tuple(dst.bounds) == pytest.approx(tuple(src.bounds))
        values = dst.read()
        assert 0 <= values.min() and values.max() <= 300  # this basemap holds 8-bit values in int16
        assert abs(values.mean() - src.read([1, 2, 3]).mean()) < 5


def test_nodata_in_nodata_out(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    holed = tmp_path / "holed.tif"
    shutil.copy(naip, holed)
    with rasterio.open(holed, "r+") as ds:
        data = ds.read()
        data[:, 20:30, 10:25] = 0
        ds.write(data)
    out = super_resolve(holed, tmp_path / "sr.tif", _options(tiny_model_dir, scale=2))
    with rasterio.open(out) as dst:
        sr = dst.read()
    hole = np.zeros((128, 128), bool)
    hole[40:60, 20:50] = True
    assert np.all(sr[:, hole] == 0)
    assert np.all(sr[:, ~hole] != 0)  # no valid pixel turns into nodata


def test_a_band_subset_keeps_input_order_and_records_each_source_band(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = super_resolve(naip, tmp_path / "sr.tif", _options(tiny_model_dir, scale=2, bands=[3, 2, 4]))
    with rasterio.open(out) as dst:
        assert dst.count == 3
        assert [dst.tags(b)["SOURCE_BAND"] for b in (1, 2, 3)] == ["2", "3", "4"]
        assert dst.colorinterp == (ColorInterp.green, ColorInterp.red, ColorInterp.blue)


def test_alpha_band_is_kept_and_transparent_pixels_stay_transparent(rapideye_rgba: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = super_resolve(rapideye_rgba, tmp_path / "sr.tif", _options(tiny_model_dir, scale=2))
    with rasterio.open(rapideye_rgba) as src, rasterio.open(out) as dst:
        assert dst.colorinterp[3] == ColorInterp.alpha
        alpha_in = src.read(4)
        alpha_out = dst.read(4)
    np.testing.assert_array_equal(alpha_out, np.kron(alpha_in, np.ones((2, 2), alpha_in.dtype)))


def _seam_scores(image: np.ndarray, starts: list[int], patch: int) -> float:
    borders = sorted({*starts[1:], *(s + patch for s in starts[:-1])})
    return max(seam_score(image, borders, axis=2), seam_score(image, borders, axis=1))


def test_vcf_has_no_seams_on_a_real_scene(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = super_resolve(naip, tmp_path / "vcf.tif", _options(tiny_model_dir, scale=2, steps=8))
    with rasterio.open(out) as dst:
        sr = dst.read([1, 2, 3])
    starts = axis_starts(128, 32, 8)
    assert _seam_scores(sr, starts, 32) == pytest.approx(1.0, abs=0.15)


def test_same_seed_same_output_whatever_the_batch_size_or_patch_order(
    naip: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(name: str, **kw) -> np.ndarray:
        out = super_resolve(naip, tmp_path / name, _options(tiny_model_dir, **{"seed": 11, **kw}))
        with rasterio.open(out) as dst:
            return dst.read()

    def assert_same(a: np.ndarray, b: np.ndarray) -> None:
        # Noise is keyed by position, so runs agree; only float rounding differs (CPU convolutions are
        # not bitwise batch-invariant, ~1e-6), which flips a rare pixel by one unit after quantisation.
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        assert np.mean(a != b) < 1e-3

    one = run("b1.tif", batch_size=1)
    np.testing.assert_array_equal(run("b1_again.tif", batch_size=1), one)
    assert_same(run("b5.tif", batch_size=5), one)
    original_iter = grid_module.PatchGrid.__iter__
    monkeypatch.setattr(grid_module.PatchGrid, "__iter__", lambda self: reversed(list(original_iter(self))))
    assert_same(run("rev.tif", batch_size=3), one)
    assert np.mean(run("other_seed.tif", batch_size=1, seed=12) != one) > 0.5


@pytest.mark.parametrize("mode", list(FusionMode))
def test_memory_mapped_canvases_give_the_same_result(mode: FusionMode, naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    ram = super_resolve(naip, tmp_path / "ram.tif", _options(tiny_model_dir, mode=mode))
    disk = super_resolve(naip, tmp_path / "disk.tif", _options(tiny_model_dir, mode=mode, memmap_above_bytes=0))
    with rasterio.open(ram) as a, rasterio.open(disk) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.tif", "ram.tif"]  # work files removed


def test_plan_counts_patch_steps(naip: Path, tiny_model_dir: Path) -> None:
    plan = plan_run(naip, _options(tiny_model_dir, steps=7))
    assert (plan.height, plan.width) == (128, 128)
    assert len(plan.grid) == len(axis_starts(128, 32, 8)) ** 2
    assert plan.total_work == len(plan.grid) * 7
    independent = plan_run(naip, _options(tiny_model_dir, mode=FusionMode.INDEPENDENT))
    assert len(independent.grid) == 16 and independent.grid.overlap == 0


def test_float_reflectance_input_comes_back_in_its_units(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    reflectance = tmp_path / "reflectance.tif"
    with rasterio.open(naip) as src:
        data = src.read().astype("float32") / 255.0
        profile = {**src.profile, "dtype": "float32", "nodata": None}
    with rasterio.open(reflectance, "w", **profile) as dst:
        dst.write(data)
    out = super_resolve(reflectance, tmp_path / "sr.tif", _options(tiny_model_dir))
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "float32" and dst.nodata is None
        sr = dst.read()
    assert -0.2 < sr.min() and sr.max() < 1.2
    assert abs(sr.mean() - data.mean()) < 0.05
