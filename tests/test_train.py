"""Training data and the training loop, on a few real high-resolution rasters and a tiny model."""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from safetensors.torch import load_file

from infscene.models.sr3 import training as train_module
from infscene.errors import InfSceneError
from infscene.diffusion.schedule import Schedule
from infscene.models.registry import load_model
from infscene.models.sr3.network import ModelConfig, SR3UNet
from infscene.training.checkpoints import complete_checkpoints, load_checkpoint, optimizer_tensors
from infscene.commands.train import register, train
from infscene.training.trainer import EMA, TrainOptions, architecture
from infscene.training.data import (
    TrainingBatches,
    degrade,
    load_hr_images,
    make_batch,
    random_dihedral,
    step_streams,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN_DIR = DATA / "sr_train" / "neon_HARV_0.1m"
VAL_FILE = DATA / "sr_dev" / "neon_TEAK_CA_0.1m" / "TEAK_043.tif"

pytestmark = pytest.mark.skipif(
    not TRAIN_DIR.is_dir() or not VAL_FILE.is_file(),
    reason=f"real training imagery not found at {TRAIN_DIR} (the shared data folder beside the repository)",
)

TINY = ModelConfig(base_channels=8, channel_mults=[1, 2], norm_groups=4, scale_min=2.0, scale_max=6.0)


def tiny_config() -> ModelConfig:
    return replace(TINY, channel_mults=list(TINY.channel_mults), bands=list(TINY.bands))


def train_files() -> list[str]:
    return [str(p) for p in sorted(TRAIN_DIR.glob("*.tif"))[:3]]


def options(out: Path, steps: int, resume: bool = False) -> TrainOptions:
    return TrainOptions(
        hr=train_files(), val=str(VAL_FILE), out=str(out), steps=steps, batch=2, crop=32, lr=1e-3, warmup=2,
        checkpoint_every=2, log_every=1, preview_steps=3, resume=resume, device="cpu", threads=1, seed=7,
    )


def test_images_are_read_in_model_units_as_the_pipeline_scales_them() -> None:
    image = load_hr_images(train_files()[:1], TINY, 32)[0]
    with rasterio.open(train_files()[0]) as dataset:
        raw = dataset.read().transpose(1, 2, 0).astype(np.float64)
    np.testing.assert_allclose(image.pixels, raw / 127.5 - 1.0, atol=1e-6)
    assert image.pixel_size_m == pytest.approx(0.2) and image.valid.all()


def test_area_downsampling_is_the_block_mean_at_an_integer_scale() -> None:
    image = load_hr_images(train_files()[:1], TINY, 32)[0]
    hr = torch.from_numpy(image.pixels[:48, :60].copy()).permute(2, 0, 1)[None]
    lr = degrade(hr, 4.0, TINY)
    blocks = image.pixels[:48, :60].astype(np.float64).reshape(12, 4, 15, 4, 3).mean(axis=(1, 3))
    assert lr.shape == (1, 3, 12, 15)
    np.testing.assert_allclose(lr[0].permute(1, 2, 0).numpy(), blocks, rtol=0, atol=1e-6)


def test_degraded_input_has_the_lr_size_and_the_condition_the_hr_size() -> None:
    hr = torch.rand(2, 3, 64, 64) * 2 - 1
    assert degrade(hr, 3.7, TINY, blur_sigma=0.8, noise_std=3.0).shape == (2, 3, 17, 17)
    patches = [np.random.default_rng(i).uniform(-1, 1, (64, 64, 3)).astype(np.float32) for i in range(2)]
    batch = make_batch(patches, 3.7, TINY)
    assert batch.cond.shape == batch.hr.shape == (2, 3, 64, 64)
    assert batch.hr.min() >= -1 and batch.hr.max() <= 1


def test_blur_and_noise_change_the_input_but_keep_its_mean() -> None:
    hr = torch.from_numpy(load_hr_images(train_files()[:1], TINY, 32)[0].pixels[:64, :64].copy()).permute(2, 0, 1)[None]
    clean = degrade(hr, 4.0, TINY)
    soft = degrade(hr, 4.0, TINY, blur_sigma=1.0, noise_std=4.0, generator=torch.Generator().manual_seed(0))
    assert (soft - clean).abs().mean() * 127.5 > 1.0
    assert abs(float(soft.mean() - clean.mean())) * 127.5 < 1.0


def test_flips_and_turns_keep_the_pixel_values() -> None:
    patch = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.float32)
    seen = set()
    for seed in range(40):
        turned = random_dihedral(patch, np.random.default_rng(seed))
        np.testing.assert_array_equal(np.sort(turned, axis=None), np.sort(patch, axis=None))
        # Each pixel keeps its bands together.
        assert sorted(map(tuple, turned.reshape(-1, 3))) == sorted(map(tuple, patch.reshape(-1, 3)))
        seen.add(turned.tobytes())
    assert len(seen) == 8


def test_scale_is_drawn_per_batch_within_the_range() -> None:
    batches = TrainingBatches(load_hr_images(train_files(), TINY, 32), TINY, 32, 3)
    scales = []
    for step in range(30):
        batch = batches.draw(*step_streams(0, step))
        assert torch.all(batch.scale == batch.scale[0])
        scales.append(float(batch.scale[0]))
    assert min(scales) >= TINY.scale_min and max(scales) <= TINY.scale_max
    assert len(set(scales)) == 30


def test_noise_levels_lie_in_the_schedule() -> None:
    sqrt_gamma = Schedule.paper().training_level(10000, torch.Generator().manual_seed(0))
    assert sqrt_gamma.max() <= 1.0 and sqrt_gamma.min() > 0.0
    assert sqrt_gamma.min() < 0.01 and sqrt_gamma.max() > 0.99


def test_training_writes_a_model_and_resumes_exactly(tmp_path: Path) -> None:
    straight = train(options(tmp_path / "straight", steps=4), tiny_config())
    assert straight.step == 4 and math.isfinite(straight.train_loss) and math.isfinite(straight.val_loss)

    first = train(options(tmp_path / "resumed", steps=2), tiny_config())
    assert first.step == 2
    checkpoint = complete_checkpoints(tmp_path / "resumed" / "checkpoints")[-1]
    assert checkpoint.name == "step-0000002"
    model = SR3UNet(tiny_config())
    optimizer = torch.optim.AdamW(model.parameters())
    state = load_checkpoint(checkpoint, model, EMA(model, 0.999).model, optimizer)
    assert state["step"] == 2
    saved = load_file(str(checkpoint / "optimizer.safetensors"))
    restored, groups = optimizer_tensors(optimizer)
    assert restored.keys() == saved.keys() and all(torch.equal(restored[k], saved[k]) for k in saved)
    assert float(restored["0.step"]) == 2.0 and groups["param_groups"][0]["lr"] == pytest.approx(1e-3)

    with pytest.raises(Exception, match="--resume"):
        train(options(tmp_path / "resumed", steps=4), tiny_config())
    resumed = train(options(tmp_path / "resumed", steps=4, resume=True), tiny_config())
    assert resumed.step == 4 and [r["step"] for r in resumed.history if "loss" in r] == [3, 4]
    a, b = load_model(tmp_path / "straight"), load_model(tmp_path / "resumed")
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(wa, wb), name
    assert a.config.trained and "4 steps" in a.config.notes and a.config.train_pixel_size_m == pytest.approx(0.2)
    log = [json.loads(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert {"val_loss", "val_loss_ema"} <= set(log[-1]) and log[-1]["step"] == 4
    assert (tmp_path / "resumed" / "samples" / "step-0000004.png").is_file()


def test_a_damaged_training_checkpoint_is_named_and_never_resumed(tmp_path: Path) -> None:
    first = train(options(tmp_path / "run", steps=2), tiny_config())
    assert first.step == 2
    checkpoint = complete_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    weights = checkpoint / "ema.safetensors"
    intact = weights.read_bytes()
    garbled = bytearray(intact)
    garbled[-5] ^= 0xFF  # same length, a valid header: only the checksum can tell
    weights.write_bytes(bytes(garbled))
    with pytest.raises(InfSceneError, match=r"ema\.safetensors does not match its checksum"):
        train(options(tmp_path / "run", steps=4, resume=True), tiny_config())
    weights.unlink()
    with pytest.raises(InfSceneError, match=r"ema\.safetensors is missing"):
        train(options(tmp_path / "run", steps=4, resume=True), tiny_config())
    weights.write_bytes(intact)
    state = checkpoint / "state.json"
    state.write_text(state.read_text()[:-20])
    with pytest.raises(InfSceneError, match="state.json is damaged"):
        train(options(tmp_path / "run", steps=4, resume=True), tiny_config())


def test_the_best_validated_weights_are_kept_across_resumes(tmp_path: Path) -> None:
    """OUT/best holds the raw or EMA weights with the lowest validation loss of every checkpoint so far, resumes
    included: the last checkpoints are not always the best, and the best is what ships."""
    train(options(tmp_path, steps=2), tiny_config())
    train(options(tmp_path, steps=4, resume=True), tiny_config())
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    validated = [(min(r["val_loss"], r["val_loss_ema"]), r["step"]) for r in log if "val_loss" in r]
    record = json.loads((tmp_path / "best" / "best.json").read_text())
    assert (record["val_loss"], record["step"]) == min(validated)
    best = load_model(tmp_path / "best")
    assert best.config.trained and f"step {record['step']}" in best.config.notes


def test_an_interrupt_leaves_a_checkpoint_to_resume_from(tmp_path: Path) -> None:
    def interrupt_at_step_3(record: dict) -> None:
        if record["step"] == 3 and "loss" in record:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(replace(options(tmp_path, steps=10), checkpoint_every=100), tiny_config(), on_record=interrupt_at_step_3)
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step-0000003"]
    assert train(replace(options(tmp_path, steps=4, resume=True), checkpoint_every=100), tiny_config()).step == 4


def test_a_time_limit_stops_with_a_checkpoint_and_a_model_and_resume_goes_on(tmp_path: Path) -> None:
    limited = replace(options(tmp_path, steps=50), checkpoint_every=100, time_limit_min=1e-6)
    first = train(limited, tiny_config())
    assert first.step == 1
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step-0000001"]
    assert load_model(tmp_path).config.trained and first.val_loss is not None
    assert train(replace(limited, resume=True), tiny_config()).step == 2


def test_init_starts_from_a_models_weights(tmp_path: Path) -> None:
    train(options(tmp_path / "base", steps=2), tiny_config())
    frozen = dict(lr=0.0, checkpoint_every=100)  # no update: the result must be the starting weights
    tuned = train(replace(options(tmp_path / "tuned", steps=1), init=str(tmp_path / "base"), **frozen), tiny_config())
    fresh = train(replace(options(tmp_path / "fresh", steps=1), **frozen), tiny_config())
    base, tuned_model, fresh_model = (load_model(tmp_path / name) for name in ("base", "tuned", "fresh"))
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), tuned_model.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), fresh_model.state_dict().values()))
    assert tuned.step == 1 and "from the weights of base" in tuned_model.config.notes


def test_a_run_setting_in_the_config_does_not_block_a_resume() -> None:
    """A run resumed with --init pointing at a shipped model (whose config.json carries default_detail, chosen by the
    benchmark after training) is the same architecture as its checkpoint; a width is not."""
    saved = {"family": "e2diffsr", "features": 48, "notes": "stage 2", "trained": True}
    shipped = {**saved, "notes": "stage 3", "default_detail": 0.5, "train_pixel_size_m": 0.3}
    assert architecture(saved) == architecture(shipped)
    assert architecture(saved) != architecture({**shipped, "features": 64})


def test_out_of_gpu_memory_says_what_to_lower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train_module, "diffusion_loss", out_of_memory)
    with pytest.raises(InfSceneError, match="batches of 2 crops of 32 px: lower --batch or --crop"):
        train(options(tmp_path, steps=3), tiny_config())


def test_the_train_subcommand_parses_into_a_handler(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["train", "--hr", *train_files(), "--out", str(tmp_path), "--steps", "1", "--batch", "1", "--crop", "32",
         "--base-channels", "8", "--channel-mults", "1", "2", "--threads", "1", "--device", "cpu"]
    )
    assert args.func(args) == 0
    model = load_model(tmp_path)
    assert model.config.base_channels == 8 and model.config.channel_mults == [1, 2] and model.config.trained

    fine_tune = parser.parse_args(
        ["train", "--hr", *train_files(), "--out", str(tmp_path / "tuned"), "--init", str(tmp_path), "--steps", "1",
         "--batch", "1", "--crop", "32", "--threads", "1", "--device", "cpu"]
    )
    assert fine_tune.func(fine_tune) == 0
    assert load_model(tmp_path / "tuned").config.channel_mults == [1, 2]  # the architecture of --init, not the defaults
