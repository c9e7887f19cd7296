"""--self-ensemble (e2diffsr at detail 0): the mean of the regression branch's decodes under the 8 symmetries of the
square, LR-consistent. What must hold exactly (up to float rounding): a model that is itself equivariant gains
nothing from it; the ensemble of any model is equivariant; every block mean is the input's, at a scale where output
centres lie on LR borders too; tiles, kept regions and processes do not change it; where it cannot apply, one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from dataclasses import replace
from types import SimpleNamespace
from typing import Optional

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from infscene.commands import main as cli
from infscene.diffusion.canvas import CanvasFactory
from infscene.errors import InfSceneError
from infscene.execution.local import LocalExecutor
from infscene.modelformat.folder import save_model
from infscene.models.e2diffsr import decode
from infscene.models.e2diffsr.decode import owner
from infscene.models.e2diffsr.denoiser import LatentPatchDenoiser
from infscene.models.e2diffsr.ensemble import SYMMETRIES, decode_ensemble
from infscene.models.e2diffsr.network import E2DiffSR
from infscene.models.e2diffsr.run import decode_scene, latent_grid
from infscene.models.family import Region
from infscene.plan import SROptions, plan_run
from infscene.progress import ProgressTracker
from infscene.run import super_resolve

from scenes import shared_scene
from test_e2diffsr import SHIPPED, decoder_model, naip_rgb_model_units, small_config
from test_joins import _halves, _read

RUN_TIMEOUT_S = 300


def decoded(model: E2DiffSR, lr: np.ndarray, out_size: tuple[int, int], ensemble: bool,
            kept: Optional[Region] = None) -> tuple[np.ndarray, int]:
    """The run's decode at detail 0 (the ensemble's or the plain one) through an executor, and the tiles it counted."""
    grid = latent_grid(*out_size, 64, 16)
    with LocalExecutor([LatentPatchDenoiser(model, out_size[0] / lr.shape[1], "fp32")], CanvasFactory(None)) as executor:
        job = SimpleNamespace(grid=grid, executor=executor, tracker=ProgressTracker(10**6))
        if ensemble:
            canvas = decode_ensemble(job, model.config, lr, out_size, kept)
        else:
            canvas = decode_scene(job, model.config, None, lr, out_size, True, 0.0, kept)
        return canvas.data[:, : out_size[0], : out_size[1]].copy(), job.tracker.done


def bicubic_model() -> E2DiffSR:
    """A model whose regression branch adds nothing: its output is the bicubic base, which every flip and transpose
    of the input flips and transposes (grid_sample's symmetric kernel at positions symmetric about the centre)."""
    torch.manual_seed(0)
    model = E2DiffSR(small_config()).eval()
    last = model.regression.upsampler.mlp[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return model


@pytest.mark.parametrize("side, out_size", [(32, (128, 128)), (24, (60, 60))])  # 4x; 2.5x, centres on LR borders
def test_the_ensemble_of_an_equivariant_model_is_its_plain_decode(side: int, out_size: tuple[int, int]) -> None:
    model = bicubic_model()
    lr = naip_rgb_model_units(side)
    ensemble, tiles = decoded(model, lr, out_size, ensemble=True)
    plain, plain_tiles = decoded(model, lr, out_size, ensemble=False)
    assert tiles == 8 * plain_tiles
    np.testing.assert_allclose(ensemble, plain, atol=2e-6)


def test_the_ensemble_of_a_model_that_is_not_equivariant_is_equivariant() -> None:
    """Decoding a flipped, transposed or rotated input gives the flipped, transposed or rotated output: each of the 8
    decodes was turned back to its place, whichever symmetry came first."""
    torch.manual_seed(1)
    model = E2DiffSR(small_config()).eval()
    lr = naip_rgb_model_units(24)[:, :, :20]  # not square: a transpose swaps the sides
    out_size = (96, 80)
    ensemble, _ = decoded(model, lr, out_size, ensemble=True)
    plain, _ = decoded(model, lr, out_size, ensemble=False)
    assert np.abs(ensemble - plain).mean() > 1e-3  # the model itself is not equivariant: the ensemble changes it
    for symmetry in SYMMETRIES[1:]:
        turned, _ = decoded(model, np.ascontiguousarray(symmetry.apply(lr)), symmetry.size(out_size), ensemble=True)
        np.testing.assert_allclose(symmetry.undo(turned), ensemble, atol=1e-5, err_msg=str(symmetry))


def block_means(output: np.ndarray, lr_size: tuple[int, int]) -> np.ndarray:
    """The mean of each LR pixel's block of output pixels (`owner`: the LR pixel an output pixel's centre is in)."""
    rows, cols = owner(lr_size[0], output.shape[1]), owner(lr_size[1], output.shape[2])
    sums = np.zeros((output.shape[0], *lr_size))
    counts = np.zeros(lr_size)
    np.add.at(sums, (slice(None), rows[:, None], cols[None, :]), output)
    np.add.at(counts, (rows[:, None], cols[None, :]), 1)
    return sums / counts


@pytest.mark.parametrize("side, out_size", [(24, (60, 60)), (32, (118, 115))])  # 2.5x; 3.7 x 3.6x
def test_every_block_mean_of_the_ensemble_is_the_inputs(side: int, out_size: tuple[int, int]) -> None:
    """At these scales some output centres lie exactly on LR borders, so a flipped scene gives them to the block on
    their other side: the ensemble is made consistent once, in the scene's own frame, and stays exact."""
    for out_len in out_size:
        assert ((2 * np.arange(out_len) + 1) * side % (2 * out_len) == 0).any()  # a centre on an LR border
    lr = naip_rgb_model_units(side)
    ensemble, _ = decoded(decoder_model(), lr, out_size, ensemble=True)
    assert np.abs(block_means(ensemble, lr.shape[1:]) - lr).max() < 1e-5


def test_the_ensemble_decodes_alike_in_small_tiles_and_in_a_kept_region(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    model = E2DiffSR(small_config()).eval()
    lr = naip_rgb_model_units(48)
    out_size = (192, 192)
    whole, tiles = decoded(model, lr, out_size, ensemble=True)
    kept = ((40, 120), (72, 180))
    part, part_tiles = decoded(model, lr, out_size, ensemble=True, kept=kept)
    monkeypatch.setattr(decode, "DECODE_TILE_OUTPUT_PX", 64)  # cores of 16 LR pixels: 3 x 3 tiles a decode
    tiled, many = decoded(model, lr, out_size, ensemble=True)
    assert tiles == 8 * 2 and part_tiles == 8 and many == 8 * 9
    assert np.abs(tiled - whole).max() < 1e-4
    (top, bottom), (left, right) = kept
    assert np.abs(part[:, top:bottom, left:right] - whole[:, top:bottom, left:right]).max() < 1e-4
    assert not part[:, :top].any() and not part[:, :, :left].any()  # the rest is not decoded


def test_halves_of_a_raster_run_with_the_ensemble_are_their_unions_run_bitwise(tmp_path: Path) -> None:
    """The shipped model at detail 0 on a 48 x 160 crop of the real NAIP scene: each half, with a margin of 32 input
    px over the decode's reach (24 + the bicubic's 2), is the union's output bitwise. A flipped decode of a half is
    laid from the half's far edge, not the union's: its contexts start and end on lattice lines, so its latent grid
    and its read positions agree with the union's all the same."""
    crop = tmp_path / "naip_48x160.tif"
    with rasterio.open(shared_scene("naip_ND_5m/m_4709963_se_14_1_20100629.tif")) as ds:
        window = Window(300, 300, 160, 48)
        profile = {**ds.profile, "width": 160, "height": 48, "transform": ds.window_transform(window)}
        with rasterio.open(crop, "w", **profile) as out:
            out.write(ds.read(window=window))
    options = SROptions(scale=4, bands=[1, 2, 3], model_dir=SHIPPED, checkpoint=False, detail=0.0, self_ensemble=True)
    union = _read(super_resolve(crop, tmp_path / "union.tif", options))
    left, right, middle = _halves(crop)
    for name, bounds, cols in (("left", left, slice(0, 4 * middle)), ("right", right, slice(4 * middle, None))):
        half = replace(options, bounds=bounds, margin=32)
        assert plan_run(crop, half).window.width < 160  # a context of its own, not the whole crop
        np.testing.assert_array_equal(_read(super_resolve(crop, tmp_path / f"{name}.tif", half)), union[:, :, cols])


@pytest.fixture(scope="module")
def e2_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(E2DiffSR(small_config()), tmp_path_factory.mktemp("e2model"))


@pytest.fixture(scope="module")
def textured_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(E2DiffSR(small_config(texture_channels=8, texture_blocks=1, default_detail=0.7)),
                      tmp_path_factory.mktemp("textured"))


def test_a_run_with_the_ensemble_is_the_same_bytes_from_the_command_line_and_the_api(
        e2_model_dir: Path, naip: Path, tmp_path: Path) -> None:
    """End to end on the real NAIP fixture: the command line's output and the Python API's (another process) are the
    same bytes, tagged, and not the plain detail-0 run's; its progress counted 8 decodes."""
    arguments = ["--scale", "4", "--bands", "1,2,3", "--model", str(e2_model_dir), "--detail", "0"]
    done = subprocess.run([sys.executable, "-m", "infscene", "sr", str(naip), str(tmp_path / "cli.tif"), *arguments,
                           "--self-ensemble", "--progress", "none"], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    options = SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, detail=0.0, self_ensemble=True)
    counted: list[int] = []
    super_resolve(naip, tmp_path / "api.tif", options, progress=lambda event: counted.append(event.done))
    super_resolve(naip, tmp_path / "plain.tif", SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, detail=0.0))
    plan = plan_run(naip, options)
    plain_plan = plan_run(naip, SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, detail=0.0))
    assert plan.finishing_units == 8 * plain_plan.finishing_units and counted[-1] == plan.total_work == plan.finishing_units
    with rasterio.open(tmp_path / "cli.tif") as cli_out, rasterio.open(tmp_path / "api.tif") as api_out, \
            rasterio.open(tmp_path / "plain.tif") as plain_out:
        assert cli_out.tags()["INFSCENE_SELF_ENSEMBLE"] == "True" and plain_out.tags()["INFSCENE_SELF_ENSEMBLE"] == "False"
        ensemble = cli_out.read()
        np.testing.assert_array_equal(ensemble, api_out.read())
        assert (ensemble != plain_out.read()).any()


def test_the_ensemble_is_its_own_checkpoint_key(e2_model_dir: Path, naip: Path, tmp_path: Path) -> None:
    """An interrupted run without it is not resumed by a run with it: the outputs differ."""
    options = SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, detail=0.0)
    with_it = SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, detail=0.0, self_ensemble=True)
    assert (plan_run(naip, options, tmp_path / "out.tif").checkpoint_dir
            != plan_run(naip, with_it, tmp_path / "out.tif").checkpoint_dir)


def test_where_the_ensemble_cannot_apply_it_is_one_line(tiny_model_dir: Path, textured_model_dir: Path, naip: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = dict(scale=4, bands=[1, 2, 3], self_ensemble=True)
    with pytest.raises(InfSceneError, match="^this model is SR3: only e2diffsr models take --self-ensemble$"):
        plan_run(naip, SROptions(model_dir=tiny_model_dir, **base))
    with pytest.raises(InfSceneError, match=r"^--self-ensemble averages the regression branch alone: it needs "
                                            r"--detail 0, not --detail 0\.5$"):
        plan_run(naip, SROptions(model_dir=textured_model_dir, detail=0.5, **base))
    arguments = ["sr", str(naip), str(tmp_path / "out.tif"), "--scale", "4", "--model", str(textured_model_dir),
                 "--self-ensemble"]
    assert cli.main(arguments) == cli.EXIT_ERROR
    assert capsys.readouterr().err == ("infscene: --self-ensemble averages the regression branch alone: it needs "
                                       "--detail 0, not this model's default detail, 0.7\n")
    assert list(tmp_path.iterdir()) == []


def test_the_ensemble_does_not_need_zeroed_canvases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dask store reopens a canvas of the same name and shape with its old values (a second sample, a resumed
    run): the sum of the decodes is written by the first, not added to what was there."""
    model = bicubic_model()
    lr = naip_rgb_model_units(24)
    clean, _ = decoded(model, lr, (96, 96), ensemble=True)
    make_canvas = LocalExecutor.make_canvas

    def stale(self: LocalExecutor, *args: object, **kwargs: object) -> object:
        canvas = make_canvas(self, *args, **kwargs)
        canvas.data[:] = 7.0
        return canvas

    monkeypatch.setattr(LocalExecutor, "make_canvas", stale)
    np.testing.assert_array_equal(decoded(model, lr, (96, 96), ensemble=True)[0], clean)


def test_the_ensemble_on_dask_workers_is_the_local_runs_bytes(naip: Path, tmp_path: Path) -> None:
    """Two local worker processes: each reads its tile of a transformed scene from the shared LR store and the
    projection reads the decodes' sum from the store, and the output is the one-process run's, bitwise."""
    options = SROptions(scale=4, bands=[1, 2, 3], model_dir=SHIPPED, detail=0.0, self_ensemble=True)
    local = _read(super_resolve(naip, tmp_path / "local.tif", options))
    np.testing.assert_array_equal(_read(super_resolve(naip, tmp_path / "dask.tif", replace(options, dask="local:2"))), local)
