"""`infscene sr --iceplant` on a Planet-analytic-like band order: the output's tags lead the iceplant step."""
from __future__ import annotations

from pathlib import Path

import rasterio
from rasterio.enums import ColorInterp

from infscene import cli


def test_sr_with_iceplant_finds_red_green_blue_nir_in_a_bgrn_output(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    bgrn = tmp_path / "bgrn.tif"
    with rasterio.open(naip) as src:
        data, profile = src.read(), src.profile
    with rasterio.open(bgrn, "w", **profile) as dst:
        dst.write(data[[2, 1, 0, 3]])
        dst.colorinterp = [ColorInterp.undefined] * 4
    sr, probability = tmp_path / "sr.tif", tmp_path / "sr_iceplant.tif"
    code = cli.main(["sr", str(bgrn), str(sr), "--scale", "2", "--steps", "2", "--patch", "32", "--bands", "3,2,1,4",
                     "--model", str(tiny_model_dir), "--iceplant", str(probability), "--progress", "none"])
    assert code == 0
    with rasterio.open(sr) as out:
        assert out.colorinterp == (ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined)
    with rasterio.open(probability) as p:
        assert p.tags()["bands"] == "3,2,1,4" and p.tags()["model"] == "iceplant-nir"
        assert (p.width, p.height) == (128, 128)
        values = p.read(1)
    assert 0.0 <= values.min() and values.max() <= 1.0
