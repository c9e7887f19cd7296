"""Output paths that cannot be written as named are refused in one line before any work, and nothing is replaced:
another format's extension, a device or FIFO, a name too long for the file system, a path ending in a separator."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from infscene.commands import main as cli
from infscene.errors import InfSceneError
from infscene.raster.atomic import check_output_path


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.vrt", "out", "out.tif.bak"])
def test_an_extension_of_another_format_is_refused_and_nothing_is_written(naip: Path, tiny_model_dir: Path, tmp_path: Path,
                                                                          name: str, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["sr", str(naip), str(tmp_path / name), "--scale", "2", "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1
    assert f"output {name} must be a GeoTIFF file named .tif or .tiff" in err
    assert list(tmp_path.iterdir()) == []


def test_upper_case_tif_is_a_geotiff_and_the_preview_must_be_a_png(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "OUT.TIF") == tmp_path / "OUT.TIF"
    with pytest.raises(InfSceneError, match="must be a PNG file named .png"):
        check_output_path(tmp_path / "preview.tif", "PNG")


def test_a_device_is_never_replaced() -> None:
    with pytest.raises(InfSceneError, match="must be a GeoTIFF"):  # /dev/null has no .tif: refused by name first
        check_output_path("/dev/null")


def test_a_fifo_named_like_a_geotiff_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    with pytest.raises(InfSceneError, match="exists and is not a regular file"):
        check_output_path(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_name_longer_than_the_file_system_allows_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InfSceneError, match="longer than .* file system allows"):
        check_output_path(tmp_path / ("x" * 300 + ".tif"))


def test_a_path_ending_in_a_separator_names_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InfSceneError, match="ends in a separator"):
        check_output_path(f"{tmp_path}/new/")
    assert not (tmp_path / "new").exists()


def test_a_preview_named_for_another_format_is_refused_before_any_work(naip: Path, tiny_model_dir: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["sr", str(naip), str(tmp_path / "o.tif"), "--scale", "2", "--model", str(tiny_model_dir),
                     "--preview", str(tmp_path / "p.jpg")])
    assert code == cli.EXIT_ERROR and "must be a PNG file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
