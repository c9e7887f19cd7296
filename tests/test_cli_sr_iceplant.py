"""`infscene sr --iceplant` on a Planet-analytic-like band order: the output's tags lead the iceplant step; on an int16
input it refuses before any work, as the plugin's planning call does."""
from __future__ import annotations

from pathlib import Path

import pytest
import rasterio
from rasterio.enums import ColorInterp

from infscene.commands import main as cli
from infscene.quick_plan import quick_plan


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


def test_sr_with_iceplant_refuses_an_int16_input_up_front_as_the_planning_call_does(
        planet: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # The fixture's values (14-255) pass the iceplant step's own range check, so before this refusal the run went to
    # its end and the result's overshoot (a 0-234 mosaic gave -6) could then throw it away.
    sr, probability = tmp_path / "sr.tif", tmp_path / "sr_iceplant.tif"
    [problem] = quick_plan(str(planet), str(sr), scale=2.0, iceplant=True).problems
    for extra in (["--dry-run"], ["--progress", "none"]):
        code = cli.main(["sr", str(planet), str(sr), "--scale", "2", "--patch", "32", "--model", str(tiny_model_dir),
                         "--iceplant", str(probability), *extra])
        assert code == cli.EXIT_ERROR and capsys.readouterr().err == f"infscene: {problem}\n"
    assert "int16" in problem and list(tmp_path.iterdir()) == []
