"""Bad input, cancel and the command line: a clear one-line message, no output, no leftovers."""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from infscene.raster import atomic
from infscene.commands import main as cli
from infscene.diffusion.fusion import FusionMode
from infscene.errors import Cancelled, InfSceneError
from infscene.plan import SROptions
from infscene.run import super_resolve
from infscene.models.sr3.denoiser import PatchDenoiser

from scenes import FIXTURES


def _naip_bounds(**shift: float) -> tuple[float, float, float, float]:
    with rasterio.open(FIXTURES / "naip_nd_5m_64.tif") as ds:
        b = ds.bounds
    dx = shift.get("dx", 0.0)
    return (b.left + dx, b.bottom, b.right + dx, b.top)


def _options(model: Path, **kw) -> SROptions:
    return SROptions(**{"scale": 2, "steps": 2, "patch": 32, "overlap": 8, "model_dir": model, **kw})


BAD_INPUTS = {
    "missing file": (FIXTURES / "nope.tif", {}, "input file not found"),
    "not a raster": (FIXTURES / "README.md", {}, "not a readable raster"),
    "rotated grid": (FIXTURES / "rotated.tif", {}, "rotated or sheared geotransform"),
    "one band": (FIXTURES / "float_nan.tif", {}, "1 data band(s)"),
    "no valid pixel": (FIXTURES / "all-nodata.tif", {"bands": [3, 2, 1, 4]}, "no valid pixels"),
    "extent outside": (FIXTURES / "naip_nd_5m_64.tif", {"bounds": _naip_bounds(dx=10_000)}, "lies outside the raster"),
    "empty extent": (FIXTURES / "naip_nd_5m_64.tif", {"bounds": (10.0, 10.0, 10.0, 20.0)}, "empty extent"),
    "missing band": (FIXTURES / "naip_nd_5m_64.tif", {"bands": [1, 2, 7]}, "band 7 does not exist"),
    "two bands": (FIXTURES / "naip_nd_5m_64.tif", {"bands": [1, 2]}, "at least 3 distinct band"),
    "scale too small": (FIXTURES / "naip_nd_5m_64.tif", {"scale": 1.0}, "scale factor must be in"),
    "bad patch": (FIXTURES / "naip_nd_5m_64.tif", {"patch": 33}, "patch size must be a multiple"),
    "bad overlap": (FIXTURES / "naip_nd_5m_64.tif", {"overlap": 20}, "overlap must be between"),
    "no steps": (FIXTURES / "naip_nd_5m_64.tif", {"steps": 0}, "steps must be between 1 and 2000"),
    "too many steps": (FIXTURES / "naip_nd_5m_64.tif", {"steps": 2001}, "steps must be between 1 and 2000, got 2001"),
    "negative seed": (FIXTURES / "naip_nd_5m_64.tif", {"seed": -1}, "seed must be 0 or more"),
    "infinite bounds": (FIXTURES / "naip_nd_5m_64.tif", {"bounds": (0.0, 0.0, float("inf"), 1e9)}, "must be finite numbers"),
    "batch size 0": (FIXTURES / "naip_nd_5m_64.tif", {"batch_size": 0}, "batch size must be between 1 and"),
    "negative batch size": (FIXTURES / "naip_nd_5m_64.tif", {"batch_size": -3}, "batch size must be between 1 and"),
    "huge batch size": (FIXTURES / "naip_nd_5m_64.tif", {"batch_size": 10**9}, "batch size must be between 1 and"),
    "huge patch": (FIXTURES / "naip_nd_5m_64.tif", {"patch": 10**6}, "patch size must be between 1 and"),
    "infinite scale": (FIXTURES / "naip_nd_5m_64.tif", {"scale": float("inf")}, "scale factor must be in"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_gets_its_message_and_leaves_no_file(case: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    path, options, message = BAD_INPUTS[case]
    with pytest.raises(InfSceneError) as err:
        super_resolve(path, tmp_path / "out.tif", _options(tiny_model_dir, **options))
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_and_full_disk(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    naip = FIXTURES / "naip_nd_5m_64.tif"
    with pytest.raises(InfSceneError, match="output folder does not exist"):
        super_resolve(naip, tmp_path / "no" / "out.tif", _options(tiny_model_dir))
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(InfSceneError, match="not enough disk space"):
        super_resolve(naip, tmp_path / "out.tif", _options(tiny_model_dir))
    assert list(tmp_path.iterdir()) == []


def test_out_of_gpu_memory_says_what_to_lower_and_leaves_no_file(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(PatchDenoiser, "posterior_mean", out_of_memory)
    with pytest.raises(InfSceneError, match="GPU ran out of memory with 4 patches of 32 px per batch: lower --batch-size"):
        super_resolve(FIXTURES / "naip_nd_5m_64.tif", tmp_path / "out.tif", _options(tiny_model_dir))
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_within_a_step_and_leaves_no_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = []
    with pytest.raises(Cancelled):
        super_resolve(FIXTURES / "naip_nd_5m_64.tif", tmp_path / "out.tif", _options(tiny_model_dir, steps=20),
                      progress=done.append, is_cancelled=lambda: len(done) >= 3)
    assert len(done) == 3 and done[-1].done < done[-1].total  # honoured at the check after the third batch
    assert list(tmp_path.iterdir()) == []  # not even a checkpoint: no step was finished


def test_an_existing_output_is_replaced_only_by_a_complete_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(Cancelled):
        super_resolve(FIXTURES / "naip_nd_5m_64.tif", out, _options(tiny_model_dir), is_cancelled=lambda: True)
    assert out.read_bytes() == b"previous result"


def test_cli_bad_input_is_one_line_on_stderr_and_non_zero(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["sr", str(FIXTURES / "rotated.tif"), str(tmp_path / "o.tif"), "--scale", "2", "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR
    assert err.startswith("infscene: rotated or sheared geotransform") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_json_events(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o.tif"
    code = cli.main(["sr", str(FIXTURES / "naip_nd_5m_64.tif"), str(out), "--scale", "2", "--steps", "2", "--patch", "32",
                     "--model", str(tiny_model_dir), "--progress", "json", "--preview", str(tmp_path / "p.png")])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert events[0]["event"] == "plan" and events[0]["output_width"] == 128 and events[0]["total"] == 2 * 25
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 50
    assert all(a["done"] < b["done"] for a, b in zip(progress, progress[1:]))
    assert events[-1] == {"event": "done", "outputs": [str(out), str(tmp_path / "p.png")]}
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_cli_dry_run_writes_nothing(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["sr", str(FIXTURES / "naip_nd_5m_64.tif"), str(tmp_path / "o.tif"), "--scale", "4",
                     "--patch", "32", "--model", str(tiny_model_dir), "--dry-run"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and plan["output_width"] == 256 and plan["estimated_s"] > 0
    assert list(tmp_path.iterdir()) == []


def test_every_sr_option_says_what_it_does() -> None:
    """Every option and argument of `infscene sr` has a help text of its own: at least three words besides the
    option's name and 'default' (argparse alone lists the flag with no explanation)."""
    parser = cli.build_parser()
    subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    unexplained = []
    for action in subcommands.choices["sr"]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        own_words = set(re.findall(r"[a-z]+", action.dest.lower())) | {"default"}
        words = set(re.findall(r"[a-z]{2,}", (action.help or "").replace("%(default)s", "").lower())) - own_words
        if len(words) < 3:
            unexplained.append(action.option_strings[0] if action.option_strings else action.dest)
    assert unexplained == []


def test_a_truncated_geotiff_is_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 11: a truncated GeoTIFF gave a rasterio traceback."""
    whole = tmp_path / "whole.tif"
    with rasterio.open(FIXTURES / "naip_nd_5m_64.tif") as src:
        profile = {**src.profile, "compress": "deflate", "tiled": False}
        with rasterio.open(whole, "w", **profile) as dst:
            dst.write(src.read())
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(InfSceneError, match="cannot read .*cut.tif.* truncated or corrupt|not a readable raster") as err:
        super_resolve(cut, tmp_path / "out.tif", _options(tiny_model_dir))
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif", "whole.tif"]


CLI_BAD_INPUTS = {
    "dry run, batch size 0": (["--dry-run", "--batch-size", "0"], "batch size must be between 1 and 4096 patches, got 0"),
    "dry run, huge batch": (["--dry-run", "--batch-size", "100000"], "batch size must be between 1 and 4096"),
    "dry run, huge patch": (["--dry-run", "--patch", "100000"], "patch size must be between 1 and 512"),
    "negative batch": (["--batch-size", "-2"], "batch size must be between 1 and 4096 patches, got -2"),
    "negative seed": (["--seed", "-1"], "seed must be 0 or more"),
    "too many steps": (["--steps", "2001"], "steps must be between 1 and 2000"),
    "inf in bounds": (["--bounds", "0", "0", "inf", "1e9"], "must be finite numbers"),
    "not a number": (["--steps", "many"], "argument --steps: invalid int value"),
}


@pytest.mark.parametrize("case", CLI_BAD_INPUTS, ids=list(CLI_BAD_INPUTS))
def test_cli_bad_input_is_one_line_and_a_json_error_event(case: str, tmp_path: Path, tiny_model_dir: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    extra, message = CLI_BAD_INPUTS[case]
    code = cli.main(["sr", str(FIXTURES / "naip_nd_5m_64.tif"), str(tmp_path / "o.tif"), "--scale", "2", "--patch", "32",
                     "--model", str(tiny_model_dir), "--progress", "json", *extra])
    captured = capsys.readouterr()
    assert code in (cli.EXIT_ERROR, cli.EXIT_USAGE)
    assert captured.err.count("\n") == 1 and message in captured.err
    assert json.loads(captured.out.splitlines()[-1]) == {"event": "error", "message": captured.err[len("infscene: "):-1]}
    assert list(tmp_path.iterdir()) == []


def test_cli_dry_run_with_the_largest_batch_and_patch_times_a_small_batch(tmp_path: Path, tiny_model_dir: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["sr", str(FIXTURES / "naip_nd_5m_64.tif"), str(tmp_path / "o.tif"), "--scale", "2",
                     "--patch", "512", "--batch-size", "4096", "--model", str(tiny_model_dir), "--dry-run"])
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and plan["patches"] == 1 and plan["estimated_s"] > 0


@pytest.mark.parametrize("argv, message", [
    (["bogus"], "infscene: argument command: invalid choice: 'bogus'"),
    (["sr", "in.tif"], "infscene: sr: the following arguments are required: output (see infscene sr --help)"),
])
def test_cli_usage_errors_carry_one_prefix(argv: list, message: str, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and err.startswith(message) and err.count("infscene:") == 1


def test_a_raster_of_ten_million_pixels_a_side_is_refused_in_one_line_before_any_planning(tmp_path: Path) -> None:
    """A VRT of 10^7 x 10^7 px (the fixture in its corner) at 4x: the output cannot fit on any disk, and the run says
    so before the grid and its decode tiles are planned (which walked every tile: minutes at this size)."""
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="0">{FIXTURES / "naip_nd_5m_64.tif"}'
        f'</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>' for b in (1, 2, 3))
    vrt = tmp_path / "huge.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="10000000" rasterYSize="10000000"><SRS>EPSG:26914</SRS>'
                   f'<GeoTransform>500000, 5, 0, 5300000, 0, -5</GeoTransform>{bands}</VRTDataset>')
    with pytest.raises(InfSceneError, match=r"^not enough disk space in .*: the run needs about [\d.]+ TB"):
        super_resolve(vrt, tmp_path / "out.tif", SROptions(scale=4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.vrt"]


def test_the_python_api_checks_every_value_before_using_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A TypeError (samples "2", model_dir 123) and an AttributeError (mode "vcf" passed the check) before."""
    naip = FIXTURES / "naip_nd_5m_64.tif"
    for name, value, message in (("samples", "2", "samples must be a whole number, got '2'"),
                                 ("model_dir", 123, "model dir must be a path, got 123")):
        with pytest.raises(InfSceneError, match=f"^{re.escape(message)}$"):
            super_resolve(naip, tmp_path / "out.tif", _options(tiny_model_dir, **{name: value}))
    named = super_resolve(naip, tmp_path / "named.tif", _options(tiny_model_dir, mode="vcf", bands="1,2,3"))
    typed = super_resolve(naip, tmp_path / "typed.tif", _options(tiny_model_dir, mode=FusionMode.VCF, bands=[1, 2, 3]))
    with rasterio.open(named) as by_name, rasterio.open(typed) as by_type:
        assert np.array_equal(by_name.read(), by_type.read())
