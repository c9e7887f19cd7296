"""The probability GeoTIFF: input grid, nodata, variants, clear errors, cancellation and the CLI."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from infscene.errors import Cancelled, InfSceneError
from infscene.commands import iceplant as cli
from infscene.iceplant import write_iceplant_probability
from infscene.iceplant.predict import patch_layout

from scenes import shared_scene

UTM14 = CRS.from_epsg(26914)


def write_raster(path: Path, data: np.ndarray, transform: Affine = Affine(0.6, 0, 500000, 0, -0.6, 3800000),
                 **extra: object) -> Path:
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2],
               "dtype": data.dtype.name, "crs": UTM14, "transform": transform, **extra}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def assert_same_grid(src: Path, out: Path) -> None:
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.width, b.height) == (a.crs, a.transform, a.width, a.height)
        assert b.count == 1 and b.dtypes[0] == "float32" and np.isnan(b.nodata)


def test_output_is_on_the_input_grid_with_nodata_where_the_input_has_none(naip: Path, tmp_path: Path) -> None:
    with rasterio.open(naip) as src:
        data, profile, interp = src.read(), src.profile, src.colorinterp
    data[:, :10, :7] = 0  # nodata 0 in every band
    src_path = tmp_path / "naip.tif"
    with rasterio.open(src_path, "w", **profile) as dst:
        dst.write(data)
        dst.colorinterp = interp  # keep band 4 NIR, not the alpha GDAL would guess for 4 bytes
    out = write_iceplant_probability(src_path, tmp_path / "p.tif", patch_size=32, stride=16)
    assert_same_grid(src_path, out)
    with rasterio.open(out) as ds:
        p = ds.read(1)
        assert ds.tags()["model"] == "iceplant-nir"
    assert np.isnan(p[:10, :7]).all() and not np.isnan(p[10:]).any() and not np.isnan(p[:, 7:]).any()
    assert 0.0 <= np.nanmin(p) and np.nanmax(p) <= 1.0


def test_full_real_scene_keeps_its_grid(tmp_path: Path) -> None:
    src = shared_scene("naip_ND_5m/m_4709963_se_14_1_20100629.tif")
    out = write_iceplant_probability(src, tmp_path / "scene.tif", stride=128)
    assert_same_grid(src, out)


def test_rgb_bands_use_the_rgb_model_and_a_float_copy_gives_the_same_map(naip: Path, tmp_path: Path) -> None:
    rgb = write_iceplant_probability(naip, tmp_path / "rgb.tif", bands=[1, 2, 3], patch_size=32, stride=16)
    with rasterio.open(naip) as src:
        as_float = write_raster(tmp_path / "f.tif", src.read([1, 2, 3]).astype(np.float32), src.transform)
    again = write_iceplant_probability(as_float, tmp_path / "rgb2.tif", patch_size=32, stride=16)
    with rasterio.open(rgb) as a, rasterio.open(again) as b:
        assert a.tags()["model"] == b.tags()["model"] == "iceplant-rgb"
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_progress_counts_patches_and_a_cancel_leaves_no_file(naip: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    out = tmp_path / "c.tif"
    with pytest.raises(Cancelled):
        write_iceplant_probability(naip, out, patch_size=32, stride=16,
                                   progress=lambda p: seen.append((p.done, p.total)), is_cancelled=lambda: len(seen) >= 2)
    assert seen == [(1, 9), (2, 9)] and len(patch_layout(naip, 32, 16)) == 9
    assert list(tmp_path.iterdir()) == []


def one_line_error(src: Path, out: Path, match: str, **kwargs: object) -> None:
    with pytest.raises(InfSceneError, match=match) as err:
        write_iceplant_probability(src, out, **kwargs)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(out.parent.glob(".*tmp*"))


def test_bad_inputs_get_one_line_messages_and_no_output(naip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "p.tif"
    out.parent.mkdir()
    rng = np.random.default_rng(0)
    two_bands = write_raster(tmp_path / "two.tif", rng.integers(0, 255, (2, 20, 20)).astype(np.uint8))
    one_line_error(two_bands, out, "has 2 band\\(s\\); the iceplant model needs red, green and blue")
    counts16 = write_raster(tmp_path / "u16.tif", rng.integers(0, 4096, (4, 20, 20)).astype(np.uint16))
    one_line_error(counts16, out, "uint16 values range from .* needs 8-bit values")
    reflectance = write_raster(tmp_path / "refl.tif", rng.random((3, 20, 20)).astype(np.float32))
    one_line_error(reflectance, out, "within 0-1 \\(reflectance\\?\\)")
    rotated = write_raster(tmp_path / "rot.tif", rng.integers(0, 255, (3, 20, 20)).astype(np.uint8),
                           Affine(0.5, 0.3, 500000, 0.3, -0.5, 3800000))
    one_line_error(rotated, out, "rotated or sheared geotransform")
    one_line_error(tmp_path / "missing.tif", out, "input file not found")
    one_line_error(naip, out, "takes 3 or 4 band numbers", bands=[1, 2])
    one_line_error(naip, out, "band 7 does not exist", bands=[1, 2, 7])
    one_line_error(naip, tmp_path / "nowhere" / "p.tif", "output folder does not exist")
    with pytest.raises(InfSceneError, match="would overwrite the input"):
        write_iceplant_probability(naip, naip)
    one_line_error(naip, out, "iceplant model 'nir' not found", model_dir=tmp_path)


def test_cli_register_runs_the_subcommand(naip: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="infscene")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["iceplant", str(naip), str(tmp_path / "p.tif"), "--bands", "1,2,3",
                              "--patch", "32", "--stride", "32", "--progress", "none"])
    assert args.func(args) == 0
    assert_same_grid(naip, tmp_path / "p.tif")
    with pytest.raises(SystemExit):
        parser.parse_args(["iceplant", str(naip), "x.tif", "--bands", "r,g,b"])
