"""Grids and progress: a geographic-CRS input keeps its grid, a south-up one works, 12-bit data stays
12-bit, warnings are one line and not fatal; progress reports rate and ETA from patch-steps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject

from infscene.errors import InfSceneWarning
from infscene.plan import plan_run, SROptions
from infscene.run import super_resolve
from infscene.progress import Progress, ProgressTracker


def _to_wgs84(src_path: Path, dst_path: Path) -> None:
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        profile = {**src.profile, "crs": "EPSG:4326", "transform": transform, "width": width, "height": height}
        with rasterio.open(dst_path, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(dst, band), resampling=Resampling.bilinear)


def test_geographic_crs_input(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    geo = tmp_path / "wgs84.tif"
    _to_wgs84(naip, geo)
    out = super_resolve(geo, tmp_path / "sr.tif", SROptions(scale=2, steps=2, patch=32, overlap=8, model_dir=tiny_model_dir))
    with rasterio.open(geo) as src, rasterio.open(out) as dst:
        assert dst.crs.to_epsg() == 4326
        assert tuple(dst.bounds) == pytest.approx(tuple(src.bounds), abs=1e-9)
        assert dst.res == pytest.approx((src.res[0] / 2, src.res[1] / 2))
        assert (dst.width, dst.height) == (2 * src.width, 2 * src.height)


def test_progress_rate_and_eta() -> None:
    p = Progress(done=30, total=120, elapsed_s=15.0)
    assert p.fraction == 0.25 and p.rate == 2.0 and p.eta_s == 45.0
    assert Progress(0, 10, 0.0).eta_s is None
    seen: list[Progress] = []
    tracker = ProgressTracker(10, seen.append)
    for _ in range(5):
        tracker.advance(2)
    assert [s.done for s in seen] == [2, 4, 6, 8, 10] and seen[-1].fraction == 1.0
    assert np.all(np.diff([s.elapsed_s for s in seen]) >= 0)


def _write(path: Path, data: np.ndarray, **profile: object) -> Path:
    base = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2], "dtype": data.dtype}
    with rasterio.open(path, "w", **{**base, **profile}) as dst:
        dst.write(data)
    return path


def test_a_south_up_raster_accepts_extents_inside_it(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 11, defect 6: a raster with a positive pixel height refused extents that lie inside it."""
    with rasterio.open(naip) as src:
        data, crs = src.read()[:, ::-1], src.crs
    south_up = _write(tmp_path / "south.tif", data, crs=crs, transform=Affine(5, 0, 1000, 0, 5, 2000))
    out = super_resolve(south_up, tmp_path / "sr.tif", SROptions(scale=2, steps=1, patch=32, model_dir=tiny_model_dir,
                                                                 bounds=(1050, 2100, 1150, 2200)))
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (40, 40) and dst.transform.e == 2.5
        assert tuple(dst.bounds) == pytest.approx((1050, 2200, 1150, 2100))  # rasterio's bottom is the first row's edge


def test_12_bit_data_stays_12_bit(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 11: 12-bit counts in uint16 came back up to 5056."""
    rng = np.random.default_rng(0)
    counts = _write(tmp_path / "u12.tif", rng.integers(0, 4096, (3, 32, 32)).astype(np.uint16),
                    crs="EPSG:32611", transform=Affine(3, 0, 500000, 0, -3, 4000000))
    out = super_resolve(counts, tmp_path / "sr.tif", SROptions(scale=4, steps=2, patch=32, model_dir=tiny_model_dir))
    with rasterio.open(out) as dst:
        values = dst.read()
    assert dst.dtypes[0] == "uint16" and values.max() <= 4095 and values.max() > 3500


WARNED = {
    "extent partly outside": (dict(bounds_shift=100.0), "reaches beyond the raster; it was clipped"),
    "scale adds no pixel": (dict(scale=1.0001), "adds no pixel"),
    "scale outside the trained range": (dict(scale=12), "outside the range the model was trained on (2-8)"),
    "tiny patches": (dict(patch=4, overlap=2), "far smaller than the model's 32 px"),
}


@pytest.mark.parametrize("case", WARNED, ids=list(WARNED))
def test_warnings_are_one_line_and_not_fatal(case: str, naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    changes, message = WARNED[case]
    shift = changes.pop("bounds_shift", None)
    options = SROptions(**{"scale": 2, "steps": 1, "patch": 32, "model_dir": tiny_model_dir, **changes})
    if shift is not None:
        with rasterio.open(naip) as src:
            b = src.bounds
        options.bounds = (b.left + shift, b.bottom, b.right + shift, b.top)
    plan = plan_run(naip, options, tmp_path / "sr.tif")
    assert any(message in w for w in plan.warnings) and not any("\n" in w for w in plan.warnings)


def test_no_georeference_is_warned_by_the_library_too(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    with rasterio.open(naip) as src:
        png = _write(tmp_path / "photo.png", src.read([1, 2, 3])[:, :32, :32], driver="PNG")
    with pytest.warns(InfSceneWarning, match="has no georeference"):
        super_resolve(png, tmp_path / "sr.tif", SROptions(scale=2, steps=1, patch=32, model_dir=tiny_model_dir))


def test_a_raster_without_georeference_is_placed_as_qgis_draws_it(naip: Path, tiny_model_dir: Path,
                                                                  tmp_path: Path) -> None:
    """Issue 36: the output of a file with no CRS and no geotransform was south-up in rasterio's placeholder frame
    (y = +row), which QGIS drew upside down and away from the input it draws at y = -row."""
    with rasterio.open(naip) as src:
        plain = _write(tmp_path / "plain.tif", src.read([1, 2, 3])[:, :30, :40])
    options = SROptions(scale=2, steps=1, patch=32, model_dir=tiny_model_dir)
    with pytest.warns(InfSceneWarning, match="has no georeference"):
        whole = super_resolve(plain, tmp_path / "whole.tif", options)
        options.bounds = (4.0, -26.0, 20.0, -6.0)  # columns 4-20, rows 6-26
        crop = super_resolve(plain, tmp_path / "crop.tif", options)
    with rasterio.open(whole) as out:
        assert out.crs is None and out.transform == Affine(0.5, 0, 0, 0, -0.5, 0) and tuple(out.bounds) == (0, -30, 40, 0)
    with rasterio.open(crop) as out:
        assert out.transform == Affine(0.5, 0, 4, 0, -0.5, -6) and (out.width, out.height) == (32, 40)
        assert tuple(out.bounds) == (4, -26, 20, -6)
