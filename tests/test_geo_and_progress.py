"""A geographic-CRS input keeps its grid; progress reports rate and ETA from patch-steps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from infscene.pipeline import SROptions, super_resolve
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
