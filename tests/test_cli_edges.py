"""The command line's edges (issue 35): GDAL virtual paths, inputs that are no file, complex bands, a deleted current
folder, a reader that goes away, a closed stderr and raw Python warnings. Each is one line, or a run that goes on."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from infscene.commands import main as cli
from infscene.console import warnings_as_lines
from infscene.quick_plan import quick_plan
from infscene.raster.io import local_file_of, open_raster, read_block

RUN_TIMEOUT_S = 120  # a subprocess that outlives this hangs (a FIFO read, a handshake): the test fails, not waits


def _sr(input_name: str, output: Path, model: Path, *options: str) -> list[str]:
    return ["sr", input_name, str(output), "--model", str(model), "--scale", "2", "--steps", "2", *options]


def _infscene(arguments: list[str], cwd: Path, **popen: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infscene", *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, **popen)


def _zipped(raster: Path, folder: Path) -> Path:
    archive = folder / "scene.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(raster, "inside/scene.tif")
    return archive


def test_a_vsizip_path_reads_the_zipped_raster_as_gdal_does(naip: Path, tmp_path: Path) -> None:
    archive = _zipped(naip, tmp_path)
    name = f"/vsizip/{archive}/inside/scene.tif"  # /vsizip//tmp/...: the double slash Path() used to fold
    assert local_file_of(name) == archive and local_file_of(f"/vsizip/{{{archive}}}/inside/scene.tif") == archive
    with open_raster(name) as ds, rasterio.open(naip) as plain:
        assert ds.name == name and np.array_equal(ds.read(), plain.read())
    answer = quick_plan(name, str(tmp_path / "out.tif"), scale=2)  # the plugin's planning call
    assert answer.problems == () and answer.output_size == (128, 128)


def test_a_vsizip_input_is_super_resolved_end_to_end(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    archive = _zipped(naip, tmp_path)
    assert cli.main(_sr(f"/vsizip/{archive}/inside/scene.tif", tmp_path / "zipped.tif", tiny_model_dir,
                        "--progress", "none")) == 0
    assert cli.main(_sr(str(naip), tmp_path / "plain.tif", tiny_model_dir, "--progress", "none")) == 0
    with rasterio.open(tmp_path / "zipped.tif") as zipped, rasterio.open(tmp_path / "plain.tif") as plain:
        assert np.array_equal(zipped.read(), plain.read())


@pytest.mark.parametrize("name", ["/vsicurl/http://example.invalid/scene.tif", "/vsis3/no-bucket/scene.tif",
                                  "/vsizip//no/such/archive.zip/scene.tif"])
def test_a_virtual_path_gdal_cannot_open_is_one_line_naming_it(name: str, tiny_model_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """No network here, and nowhere does example.invalid resolve (RFC 6761); /vsis3/ is sent there too, unsigned."""
    monkeypatch.setenv("AWS_S3_ENDPOINT", "s3.example.invalid")
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
    assert cli.main(_sr(name, tmp_path / "out.tif", tiny_model_dir)) == cli.EXIT_ERROR
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"infscene: GDAL cannot open {name}: ") and "\n" not in message  # not mangled (http:/)
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_input_is_refused_at_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    """GDAL would wait for a writer for ever."""
    os.mkfifo(tmp_path / "scene.tif")
    done = _infscene(_sr("scene.tif", tmp_path / "out.tif", tiny_model_dir), tmp_path)
    assert done.returncode == cli.EXIT_ERROR
    assert done.stderr == ("infscene: the input scene.tif is not a regular file (a FIFO, socket or device, which GDAL "
                           "cannot read as a raster): save the raster to a file and give that\n")


def test_complex_bands_are_one_line(naip: Path, tiny_model_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with rasterio.open(naip) as src:
        profile = {**src.profile, "dtype": "complex64", "nodata": None}
        with rasterio.open(tmp_path / "slc.tif", "w", **profile) as dst:
            dst.write(src.read().astype(np.complex64) * (1 + 1j))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning came first, then an internal error
        assert cli.main(_sr(str(tmp_path / "slc.tif"), tmp_path / "out.tif", tiny_model_dir)) == cli.EXIT_ERROR
    assert capsys.readouterr().err == (f"infscene: band 1 of {tmp_path / 'slc.tif'} holds complex values (complex64), "
                                       "which the engine cannot super-resolve: write their amplitude or real part to a "
                                       "real-valued raster first (e.g. gdal_translate -ot Float32, which keeps the "
                                       "real part)\n")


def test_a_deleted_current_folder_is_one_line(tmp_path: Path) -> None:
    """oneMKL, loaded with torch, killed the process (exit 2) with its own FATAL ERROR."""
    gone = tmp_path / "gone"
    gone.mkdir()
    command = f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m infscene sr a.tif b.tif --scale 2'
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("infscene: the current folder no longer exists (it was deleted or moved "
                                            "away): cd to an existing folder and rerun")


def test_a_reader_that_goes_away_stops_the_run_quietly(naip: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    """`--progress json | head -c 1`: two BrokenPipeError tracebacks before."""
    run = subprocess.Popen([sys.executable, "-m", "infscene", *_sr(str(naip), tmp_path / "out.tif", tiny_model_dir,
                                                                      "--progress", "json")],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout.read(1) == b"{"
    run.stdout.close()
    assert run.wait(timeout=RUN_TIMEOUT_S) == cli.EXIT_BROKEN_PIPE
    assert run.stderr.read() == b"" and list(tmp_path.iterdir()) == []


def _closed() -> None:
    os.close(2)


def _read_only_file_in_its_place() -> None:
    """What a shell script that execs the engine leaves after `2>&-`: itself, open for reading, as fd 2."""
    os.close(2)
    os.open(__file__, os.O_RDONLY)


@pytest.mark.parametrize("stderr", [_closed, _read_only_file_in_its_place], ids=["closed", "read-only"])
def test_a_closed_stderr_lets_the_run_finish(stderr: Callable[[], None], naip: Path, tiny_model_dir: Path,
                                             tmp_path: Path) -> None:
    """The default progress bar on a closed stderr failed the run (exit 1) with nothing said anywhere, or said its
    messages on stdout among the outputs."""
    output = tmp_path / "out.tif"
    done = subprocess.run([sys.executable, "-m", "infscene", *_sr(str(naip), output, tiny_model_dir)], cwd=tmp_path,
                          stdout=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT_S, preexec_fn=stderr)
    assert (done.returncode, done.stdout) == (0, f"{output}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_a_nodata_value_does_not_hide_the_alpha_band(naip: Path, tmp_path: Path) -> None:
    """GDAL's masks ignore the alpha band of a raster that also has a nodata value (rasterio's NodataShadowWarning
    reached the user raw): transparent pixels are invalid all the same, and nothing is warned."""
    with rasterio.open(naip) as src:
        rgb = src.read([1, 2, 3])
        profile = {**src.profile, "count": 4, "nodata": 0}
    alpha = np.full(rgb.shape[1:], 255, rgb.dtype)
    alpha[:8] = 0  # transparent, with colour values that are not the nodata value
    with rasterio.open(tmp_path / "rgba.tif", "w", **profile) as dst:
        dst.write(np.concatenate([np.maximum(rgb, 1), alpha[None]]))
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    with rasterio.open(tmp_path / "rgba.tif") as ds, warnings.catch_warnings():
        warnings.simplefilter("error")
        block = read_block(ds, rasterio.windows.Window(0, 0, ds.width, ds.height), [1, 2, 3], 4)
    assert not block.valid[:8].any() and block.valid[8:].all()


def test_a_library_warning_on_the_command_line_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings_as_lines(json_events=True):
        warnings.warn("a library's warning\nwith a second line", RuntimeWarning)
    captured = capsys.readouterr()
    assert captured.out == '{"event": "warning", "message": "a library\'s warning"}\n'
    assert captured.err == "infscene: warning: a library's warning\n"

