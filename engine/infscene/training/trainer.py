"""Training on high-resolution GeoTIFFs, for every model family, and the `infscene train` subcommand.

The Trainer (optimizer, EMA, warm-up and decay, checkpoints, time limit, resume, --init) is shared by
the families; what is optimised is an Objective: SR3Objective here, the e2diffsr stages in
e2diffsr/training.py.

SR3:
The objective is Eq. 2 of the paper: the L1 distance between the noise and the network's
estimate of it, with SR3's continuous noise level (sqrt(gamma) drawn uniformly between the
sqrt(gamma) of two neighbouring timesteps), so the model is not tied to one discretisation of
the schedule and the sampler may use any number of steps.

AdamW with a short warm-up; an exponential moving average (EMA) of the weights is what gets
saved as the model, because EMA weights give much cleaner diffusion samples than the raw ones.
Checkpoints hold no pickles: safetensors for the weights, EMA and optimizer tensors, JSON for
the rest; a run resumes from the newest complete one. Each checkpoint also records the
validation loss on fixed crops, scales, noise and timesteps, and a preview PNG
(bicubic | SR | truth) from a short reverse chain. Runs on a CPU (slowly) and on CUDA with
bf16 autocast.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol, Sequence

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..models.contract import ModelContract
from ..errors import Cancelled, InfSceneError
from ..models.e2diffsr.network import E2DiffSRConfig
from ..models.sr3.network import SR3UNet, ModelConfig, load_config, load_model, resolve_device, save_model
from ..diffusion.schedule import PatchDenoiser, linear_gammas, respaced_steps
from .data import (
    Batch,
    Degradation,
    TrainingBatches,
    fixed_batches,
    load_hr_images,
    median_pixel_size,
    step_streams,
)

CHECKPOINT_PREFIX = "step-"
STATE_FILE = "state.json"  # written last: a checkpoint folder without it is incomplete
LOG_FILE = "train_log.jsonl"
VAL_SCALES = (2.0, 3.7, 5.0, 8.0)
PREVIEW_SCALE = 4.0
PREVIEW_IMAGES = 3
KEEP_CHECKPOINTS = 2
AUXILIARY_FILE = "auxiliary.safetensors"  # an objective's own networks (stage 3's critic), when it has any
BEST_DIR = "best"  # OUT/best: the weights (raw or EMA) with the lowest validation loss so far, a model folder
BEST_FILE = "best.json"


@dataclass
class TrainOptions:
    """Everything a run needs besides the architecture; stored in each checkpoint for the record."""

    hr: list[str]
    val: Optional[str]
    out: str
    steps: int = 10000
    batch: int = 8
    crop: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-2
    warmup: int = 200
    decay_start: Optional[int] = None
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    blur_sigma: float = 0.5
    noise_std: float = 2.0
    checkpoint_every: int = 500
    time_limit_min: Optional[float] = None
    log_every: int = 50
    preview_steps: int = 20
    checkpoint_dir: Optional[str] = None
    init: Optional[str] = None
    resume: bool = False
    device: str = "auto"
    threads: Optional[int] = None
    seed: int = 0
    # e2diffsr only: the stage (1: autoencoder + regression branch, 2: latent diffusion), the side of the
    # low-resolution crops (the truth crop is that times the batch's scale), and stage 1's regularisers.
    stage: int = 1
    lr_crop: int = 32
    kl_weight: float = 1e-4
    prior_dropout: float = 0.3
    # e2diffsr stage 3 (texture head): truth crop side (0: from lr_crop), loss weights, head width, critic rate.
    hr_crop: int = 0
    perceptual_weight: float = 1.0
    adversarial_factor: float = 0.5
    texture_channels: int = 64
    critic_lr: float = 1e-4
    # bf16: the forward passes under torch.autocast (fp32 master weights); what this CPU runs 2-3x faster.
    precision: str = "fp32"

    @property
    def checkpoints(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else Path(self.out) / "checkpoints"


@dataclass
class TrainResult:
    model_dir: Path
    step: int
    train_loss: Optional[float]
    val_loss: Optional[float]
    seconds: float
    history: list[dict] = field(default_factory=list)


RecordCallback = Callable[[dict], None]


class NoiseLevels:
    """SR3's continuous noise levels on the paper's schedule (T = 2000, linear beta 1e-6..1e-2)."""

    def __init__(self) -> None:
        self.sqrt_gammas = torch.from_numpy(np.sqrt(np.concatenate([[1.0], linear_gammas()]))).float()

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """sqrt(gamma) uniform between sqrt(gamma_{t-1}) and sqrt(gamma_t) for t uniform in 1..T."""
        t = torch.randint(1, len(self.sqrt_gammas), (batch,), generator=generator)
        low, high = self.sqrt_gammas[t], self.sqrt_gammas[t - 1]
        return low + (high - low) * torch.rand(batch, generator=generator)


def diffusion_loss(model: SR3UNet, batch: Batch, sqrt_gamma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean |eps - f(x, sqrt(gamma) y0 + sqrt(1 - gamma) eps, sqrt(gamma))|."""
    device = next(model.parameters()).device
    hr, cond, scale = batch.hr.to(device), batch.cond.to(device), batch.scale.to(device)
    sqrt_gamma, noise = sqrt_gamma.to(device), noise.to(device)
    sg = sqrt_gamma[:, None, None, None]
    noisy = sg * hr + torch.sqrt(1.0 - sg**2) * noise
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        predicted = model(cond, noisy, sqrt_gamma, scale)
    return torch.mean(torch.abs(predicted.float() - noise))


class EMA:
    """Exponential moving average of the weights, with a warm-up so early checkpoints are usable.

    The decay is min(decay, (1 + step) / (10 + step)): a short run is not dominated by the
    random initialisation.
    """

    def __init__(self, model: SR3UNet, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: SR3UNet, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for averaged, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if averaged.dtype.is_floating_point:
                averaged.lerp_(current, 1.0 - decay)
            else:
                averaged.copy_(current)


def learning_rate(options: TrainOptions, step: int) -> float:
    """Linear warm-up to the paper's constant rate, then optionally a cosine decay to zero at --steps.

    The decay starts at a step of its own (not at the warm-up's end) so that a run can be resumed
    with more steps and a decay added then, without rewriting the rate of the steps already done.
    """
    rate = options.lr * min(1.0, (step + 1) / max(1, options.warmup))
    start = options.decay_start
    if start is None or step < start:
        return rate
    progress = min(1.0, (step - start) / max(1, options.steps - start))
    return rate * 0.5 * (1.0 + math.cos(math.pi * progress))


# --- checkpoints -------------------------------------------------------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state into flat named tensors (safetensors) and JSON-able groups."""
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous()
        for index, entry in state["state"].items()
        for name, value in entry.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def cpu_state(model: SR3UNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(folder: Path, step: int, model: SR3UNet, ema: EMA, optimizer: torch.optim.Optimizer, extra: dict,
                    auxiliary: Optional[dict[str, torch.Tensor]] = None) -> Path:
    """Write step-NNNNNNN/ (weights, EMA, optimizer, the objective's auxiliary networks, state.json last) and drop older ones."""
    target = folder / f"{CHECKPOINT_PREFIX}{step:07d}"
    target.mkdir(parents=True, exist_ok=True)
    if auxiliary:
        save_file({k: v.contiguous() for k, v in auxiliary.items()}, str(target / AUXILIARY_FILE))
    save_file(cpu_state(model), str(target / "model.safetensors"))
    save_file(cpu_state(ema.model), str(target / "ema.safetensors"))
    tensors, groups = optimizer_tensors(optimizer)
    save_file(tensors, str(target / "optimizer.safetensors"))
    state = {"step": step, "model_config": asdict(model.config), "optimizer": groups, **extra}
    partial = target / (STATE_FILE + ".part")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(target / STATE_FILE)
    for old in complete_checkpoints(folder)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old)
    return target


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders whose state.json was written, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / STATE_FILE).is_file())


def load_checkpoint(path: Path, model: SR3UNet, ema: EMA, optimizer: torch.optim.Optimizer) -> dict:
    """Restore weights, EMA and optimizer in place; return the JSON state (step, elapsed time...)."""
    state = json.loads((path / STATE_FILE).read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    ema.model.load_state_dict(load_file(str(path / "ema.safetensors")))
    restore_optimizer(optimizer, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    return state


# --- validation and previews --------------------------------------------------------------


class Validation:
    """Validation loss on fixed crops, scales, timesteps and noise, so numbers compare across runs."""

    def __init__(self, batches: list[Batch], seed: int) -> None:
        self.batches = batches
        generator = torch.Generator().manual_seed(seed)
        levels = NoiseLevels()
        self.draws = [(levels.sample(b.hr.shape[0], generator), torch.randn(b.hr.shape, generator=generator)) for b in batches]

    @torch.no_grad()
    def loss(self, model: SR3UNet) -> float:
        was_training = model.training
        model.eval()
        total = sum(
            diffusion_loss(model, batch, sqrt_gamma, noise).item() * batch.hr.shape[0]
            for batch, (sqrt_gamma, noise) in zip(self.batches, self.draws)
        )
        model.train(was_training)
        return total / sum(batch.hr.shape[0] for batch in self.batches)


@torch.no_grad()
def preview_samples(model: SR3UNet, batch: Batch, steps: int, seed: int) -> torch.Tensor:
    """Super-resolve a batch with a short respaced reverse chain (LR-consistent, as the product runs)."""
    device = next(model.parameters()).device
    denoiser = PatchDenoiser(model, float(batch.scale[0]), lr_consistency=True)
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(batch.hr.shape, generator=generator)
    for step in respaced_steps(steps):
        mean = denoiser.posterior_mean(y.to(device), batch.cond, step)
        y = mean + step.sigma * torch.randn(mean.shape, generator=generator) if step.index > 0 else mean
    return y.clamp(-1.0, 1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) model units -> (B, H, W, C) 8-bit."""
    return ((x.detach().cpu().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def write_image_rows(path: Path, columns: Sequence[torch.Tensor]) -> None:
    """One row per sample, one column per image batch (all the same size), as an 8-bit PNG."""
    rows = [np.concatenate(row, axis=1) for row in zip(*(to_uint8(c) for c in columns))]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def write_preview(path: Path, batch: Batch, sr: torch.Tensor) -> None:
    """One row per sample: bicubic-upsampled LR | SR | truth."""
    write_image_rows(path, [batch.cond, sr, batch.hr])


# --- the training loop --------------------------------------------------------------------


def append_log(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def hardware(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"


def describe_run(options: TrainOptions, objective_text: str, device: torch.device, seconds: float, step: int,
                 losses: dict[str, Optional[float]]) -> str:
    """The model's notes: how it was trained, in one paragraph a user can check against the card."""
    start = f" from the weights of {Path(options.init).name}" if options.init else ""
    decay = f" (cosine decay to 0 from step {options.decay_start})" if options.decay_start is not None else ""
    return (
        f"{objective_text} trained {step} steps{start} ({seconds / 60:.0f} min on {hardware(device)}), batch {options.batch}, "
        f"AdamW lr {options.lr:g}{decay} wd {options.weight_decay:g}, EMA {options.ema_decay:g}; "
        f"area downsampling with blur sigma <= {options.blur_sigma:g} LR px and noise std <= {options.noise_std:g}; "
        f"last train loss {fmt(losses['loss'])}, val loss (EMA) {fmt(losses['val_loss_ema'])}."
    )


def architecture(config: dict) -> dict:
    """The fields of a config that the weights depend on (not the provenance fields)."""
    return {k: v for k, v in config.items() if k not in ("train_pixel_size_m", "trained", "notes", "latent_scale")}


def last_value(history: Sequence[dict], key: str) -> Optional[float]:
    values = [record[key] for record in history if key in record]
    return values[-1] if values else None


class Objective(Protocol):
    """What one kind of training optimises: the family's model, its loss, its validation and its previews.

    The Trainer owns everything else (optimizer, EMA, schedule, checkpoints, time limit, log), so every
    family and stage resumes, stops and continues from shipped weights the same way.
    """

    model: nn.Module  # with a .config (a ModelContract)
    description: str  # "SR3", "E2DiffSR stage 1 (...)": the first words of the model's notes

    def parameters(self) -> Iterable[nn.Parameter]: ...

    def loss(self, model: nn.Module, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor: ...

    def validate(self, model: nn.Module) -> float: ...

    def preview(self, model: nn.Module, path: Path) -> None: ...


class SR3Objective:
    """Eq. 2 of the InfScene paper on random crops at one scale per batch."""

    description = "SR3"

    def __init__(self, options: TrainOptions, config: ModelConfig, device: torch.device) -> None:
        images = load_hr_images(options.hr, config, options.crop)
        config.train_pixel_size_m = median_pixel_size(images)
        self.batches = TrainingBatches(images, config, options.crop, options.batch, Degradation(options.blur_sigma, options.noise_std))
        self.levels = NoiseLevels()
        self.preview_steps, self.seed = options.preview_steps, options.seed
        self.model = SR3UNet(config)
        if options.init:
            self.model.load_state_dict(load_model(options.init).state_dict())
        self.model = self.model.to(device).train()
        self.validation: Optional[Validation] = None
        self.preview_batch: Optional[Batch] = None
        if options.val:
            val_images = load_hr_images(options.val, config, options.crop)
            self.validation = Validation(fixed_batches(val_images, config, options.crop, VAL_SCALES), options.seed)
            self.preview_batch = fixed_batches(val_images[:PREVIEW_IMAGES], config, options.crop, [PREVIEW_SCALE])[0]

    def parameters(self) -> Iterable[nn.Parameter]:
        return self.model.parameters()

    def loss(self, model: nn.Module, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        batch = self.batches.draw(rng, generator)
        noise = torch.randn(batch.hr.shape, generator=generator)
        return diffusion_loss(model, batch, self.levels.sample(batch.hr.shape[0], generator), noise)

    def validate(self, model: nn.Module) -> Optional[float]:
        return None if self.validation is None else self.validation.loss(model)

    def preview(self, model: nn.Module, path: Path) -> None:
        if self.preview_batch is not None:
            write_preview(path, self.preview_batch, preview_samples(model, self.preview_batch, self.preview_steps, self.seed))


ObjectiveFactory = Callable[[TrainOptions, ModelContract, torch.device], Objective]


class Trainer:
    """The state of one run (model, EMA, optimizer, step, log) and its three actions: step, checkpoint, finish."""

    def __init__(self, options: TrainOptions, config: ModelContract, make_objective: ObjectiveFactory,
                 on_record: Optional[RecordCallback] = None) -> None:
        if options.threads:
            torch.set_num_threads(options.threads)
        self.options, self.config, self.on_record = options, config, on_record
        self.device = resolve_device(options.device)
        torch.manual_seed(options.seed)
        self.objective = make_objective(options, config, self.device)
        self.model = self.objective.model
        self.ema = EMA(self.model, options.ema_decay)
        self.optimizer = torch.optim.AdamW(list(self.objective.parameters()), lr=options.lr, weight_decay=options.weight_decay)
        self.out = Path(options.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.step, self.elapsed_before = 0, 0.0
        self.resume()
        self.start = time.monotonic()
        self.recent: list[float] = []
        self.history: list[dict] = []

    def resume(self) -> None:
        existing = complete_checkpoints(self.options.checkpoints)
        if not existing:
            return
        if not self.options.resume:
            raise InfSceneError(f"{self.options.checkpoints} already holds checkpoints: pass --resume, or choose another --out")
        state = load_checkpoint(existing[-1], self.model, self.ema, self.optimizer)
        if hasattr(self.objective, "load_auxiliary_state"):
            self.objective.load_auxiliary_state(load_file(str(existing[-1] / AUXILIARY_FILE)))
        if architecture(state["model_config"]) != architecture(asdict(self.config)):
            raise InfSceneError(f"checkpoint {existing[-1]} was made with another model config; drop the architecture options or start afresh")
        self.step, self.elapsed_before = state["step"], state["seconds"]

    def emit(self, record: dict) -> None:
        record = {"step": self.step, "seconds": round(self.elapsed_before + time.monotonic() - self.start, 1), **record}
        append_log(self.out / LOG_FILE, record)
        self.history.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def train_step(self) -> None:
        """One optimizer step on the batch, timesteps and noise keyed by (seed, step)."""
        options = self.options
        rng, generator = step_streams(options.seed, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(options, self.step)
        loss = self.objective.loss(self.model, rng, generator)
        if not math.isfinite(loss.item()):
            raise InfSceneError(f"training diverged at step {self.step} (loss {loss.item()}); lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for group in self.optimizer.param_groups for p in group["params"]], options.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.model, self.step)
        self.recent.append(loss.item())
        if self.step % options.log_every == 0 or self.step == options.steps:
            self.emit({"loss": round(float(np.mean(self.recent)), 5), "lr": learning_rate(options, self.step - 1)})
            self.recent.clear()

    def checkpoint(self, validate: bool = True) -> None:
        record: dict = {}
        if validate:
            was_training = self.model.training
            self.model.eval()
            raw, averaged = self.objective.validate(self.model), self.objective.validate(self.ema.model)
            self.model.train(was_training)
            if raw is not None and averaged is not None:
                record = {"val_loss": round(raw, 5), "val_loss_ema": round(averaged, 5)}
                self.keep_best(raw, averaged)
            self.objective.preview(self.ema.model, self.out / "samples" / f"step-{self.step:07d}.png")
        self.emit(record)
        extra = {"seconds": self.history[-1]["seconds"], "options": asdict(self.options)}
        auxiliary = self.objective.auxiliary_state() if hasattr(self.objective, "auxiliary_state") else None
        save_checkpoint(self.options.checkpoints, self.step, self.model, self.ema, self.optimizer, extra, auxiliary)

    def keep_best(self, raw: float, averaged: float) -> None:
        """Keep OUT/best, the weights with the lowest validation loss so far (raw or EMA, across resumes): what ships,
        since the last checkpoints are not always the best ones."""
        loss, network, which = min((raw, self.model, "raw"), (averaged, self.ema.model, "EMA"), key=lambda entry: entry[0])
        best, record = self.out / BEST_DIR, self.out / BEST_DIR / BEST_FILE
        if record.is_file() and json.loads(record.read_text())["val_loss"] <= loss:
            return
        staged = self.out / f"{BEST_DIR}.part"
        shutil.rmtree(staged, ignore_errors=True)
        kept = copy.deepcopy(network)
        kept.config.trained = True
        kept.config.notes = f"the {which} weights of step {self.step}, the lowest validation loss of the run ({loss:.5f})"
        save_model(kept, staged)
        (staged / BEST_FILE).write_text(json.dumps({"step": self.step, "weights": which, "val_loss": round(loss, 5)}) + "\n")
        shutil.rmtree(best, ignore_errors=True)
        staged.replace(best)

    def out_of_time(self) -> bool:
        limit = self.options.time_limit_min
        return limit is not None and time.monotonic() - self.start >= 60.0 * limit

    def run(self) -> TrainResult:
        """Steps until --steps (or --time-limit), checkpointing on schedule; then the EMA weights become the model."""
        checkpointed = None
        try:
            while self.step < self.options.steps:
                self.train_step()
                if self.step % self.options.checkpoint_every == 0 or self.step == self.options.steps:
                    self.checkpoint()
                    checkpointed = self.step
                if self.out_of_time():
                    break
        except (Cancelled, KeyboardInterrupt):
            self.checkpoint(validate=False)
            raise
        except torch.OutOfMemoryError as exc:
            raise InfSceneError(
                f"the GPU ran out of memory with batches of {self.options.batch} crops of {self.options.crop} px: "
                f"lower --batch or --crop (--resume goes on from the last checkpoint)") from exc
        if checkpointed != self.step:  # stopped by the time limit, or resumed at or past --steps
            self.checkpoint()
        losses = {k: last_value(self.history, k) for k in ("loss", "val_loss_ema")}
        seconds = self.history[-1]["seconds"]
        self.ema.model.config.trained = True
        self.ema.model.config.notes = describe_run(self.options, self.objective.description, self.device, seconds, self.step, losses)
        save_model(self.ema.model, self.out)
        return TrainResult(self.out, self.step, losses["loss"], losses["val_loss_ema"], seconds, self.history)


def make_objective(options: TrainOptions, config: ModelContract, device: torch.device) -> Objective:
    """The objective of the config's family (and, for e2diffsr, of the stage in options.stage)."""
    if isinstance(config, ModelConfig):
        return SR3Objective(options, config, device)
    from ..models.e2diffsr.training import stage_objective  # the family's training lives with the family

    return stage_objective(options, config, device)


def train(options: TrainOptions, config: ModelContract, on_record: Optional[RecordCallback] = None) -> TrainResult:
    """Train (or resume) a model and write its EMA weights to `options.out` with save_model.

    An interrupt (Ctrl-C, or Cancelled raised by the CLI's SIGTERM handler) first writes a
    checkpoint of the last finished step, without validation, so --resume loses no work.
    """
    return Trainer(options, config, make_objective, on_record).run()


# --- command line -------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `infscene train` to the CLI's subcommands."""
    defaults, arch = TrainOptions(hr=[], val=None, out=""), ModelConfig()
    parser = subparsers.add_parser(
        "train",
        help="train an SR3 model on high-resolution GeoTIFFs",
        description="Train an SR3 super-resolution model: low-resolution inputs are made from the "
        "high-resolution rasters by area downsampling at a scale drawn per batch.",
    )
    parser.add_argument("--family", choices=["sr3", "e2diffsr"], default="sr3", help="model family to train (default %(default)s; with --init, the initial model's)")
    parser.add_argument("--stage", type=int, choices=[1, 2, 3], default=defaults.stage, help="e2diffsr: 1 trains the prior autoencoder and the regression branch, 2 the latent diffusion on a stage-1 model given by --init, 3 the texture head on a stage-2 model given by --init (default %(default)s)")
    parser.add_argument("--hr-crop", type=int, default=defaults.hr_crop, help="e2diffsr stage 3: truth crop side, the LR side following the scale (default: from --lr-crop)")
    parser.add_argument("--perceptual-weight", type=float, default=defaults.perceptual_weight, help="e2diffsr stage 3: weight of the Inception-feature term beside L1 (default %(default)s)")
    parser.add_argument("--adversarial-factor", type=float, default=defaults.adversarial_factor, help="e2diffsr stage 3: the adaptive adversarial weight's factor (default %(default)s)")
    parser.add_argument("--texture-channels", type=int, default=defaults.texture_channels, help="e2diffsr stage 3: width of a new texture head (default %(default)s)")
    parser.add_argument("--critic-lr", type=float, default=defaults.critic_lr, help="e2diffsr stage 3: the patch critic's Adam rate (default %(default)s)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=defaults.precision, help="bf16 runs the forward passes under autocast, weights kept in fp32 (default %(default)s)")
    parser.add_argument("--lr-crop", type=int, default=defaults.lr_crop, help="e2diffsr: low-resolution crop side; the truth crop is about this times the scale (default %(default)s)")
    parser.add_argument("--kl-weight", type=float, default=defaults.kl_weight, help="e2diffsr stage 1: weight of the latent's KL term (default %(default)s)")
    parser.add_argument("--prior-dropout", type=float, default=defaults.prior_dropout, help="e2diffsr stage 1: share of crops decoded without a prior, so the regression branch works alone (default %(default)s)")
    parser.add_argument("--hr", nargs="+", required=True, help="high-resolution GeoTIFFs: folders, globs or files")
    parser.add_argument("--val", help="folder (or glob) of validation GeoTIFFs, never trained on")
    parser.add_argument("--out", required=True, help="model folder to write (checkpoints, log and samples go inside)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="total optimizer steps (default %(default)s)")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="crops per step (default %(default)s)")
    parser.add_argument("--crop", type=int, default=defaults.crop, help="crop side in pixels (default %(default)s)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="AdamW learning rate (default %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="linear warm-up steps (default %(default)s)")
    parser.add_argument("--decay-start", type=int, help="step from which the rate falls along a cosine to zero at --steps (default: constant rate)")
    parser.add_argument("--ema-decay", type=float, default=defaults.ema_decay, help="EMA decay (default %(default)s)")
    parser.add_argument("--blur-sigma", type=float, default=defaults.blur_sigma, help="max Gaussian blur of the LR, in LR pixels (default %(default)s)")
    parser.add_argument("--noise-std", type=float, default=defaults.noise_std, help="max LR noise std in 0-255 units (default %(default)s)")
    parser.add_argument("--scale-min", type=float, default=arch.scale_min, help="smallest scale factor (default %(default)s)")
    parser.add_argument("--scale-max", type=float, default=arch.scale_max, help="largest scale factor (default %(default)s)")
    parser.add_argument("--base-channels", type=int, default=arch.base_channels, help="U-Net width (default %(default)s)")
    parser.add_argument("--channel-mults", type=int, nargs="+", default=arch.channel_mults, help="width multiplier per level (default %(default)s)")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps between checkpoints, validation and previews (default %(default)s)")
    parser.add_argument("--time-limit", type=float, metavar="MINUTES", help="stop after this much training time with a checkpoint and the model written; --resume goes on (default: none)")
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between log lines (default %(default)s)")
    parser.add_argument("--preview-steps", type=int, default=defaults.preview_steps, help="reverse steps of the preview samples (default %(default)s)")
    parser.add_argument("--checkpoint-dir", help="where checkpoints go (default OUT/checkpoints)")
    parser.add_argument("--init", metavar="MODEL_DIR", help="start from this model's weights and architecture (fine-tuning; e.g. resources/models/sr3); the architecture options are then ignored")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=defaults.device, help="(default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    parser.set_defaults(func=run_from_args)
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """The `infscene train` handler: returns the exit code; InfSceneError is left to the CLI's reporting."""
    options = TrainOptions(
        hr=list(args.hr), val=args.val, out=args.out, steps=args.steps, batch=args.batch, crop=args.crop,
        lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup, decay_start=args.decay_start, ema_decay=args.ema_decay,
        blur_sigma=args.blur_sigma, noise_std=args.noise_std, checkpoint_every=args.checkpoint_every, time_limit_min=args.time_limit,
        log_every=args.log_every, preview_steps=args.preview_steps, checkpoint_dir=args.checkpoint_dir, init=args.init,
        resume=args.resume, device=args.device, threads=args.threads, seed=args.seed,
        stage=args.stage, lr_crop=args.lr_crop, kl_weight=args.kl_weight, prior_dropout=args.prior_dropout,
        hr_crop=args.hr_crop, perceptual_weight=args.perceptual_weight, adversarial_factor=args.adversarial_factor,
        texture_channels=args.texture_channels, critic_lr=args.critic_lr, precision=args.precision,
    )
    if args.init:
        config = load_config(args.init)
    elif args.family == "e2diffsr":
        config = E2DiffSRConfig(scale_min=args.scale_min, scale_max=args.scale_max)
    else:
        config = ModelConfig(base_channels=args.base_channels, channel_mults=list(args.channel_mults),
                             scale_min=args.scale_min, scale_max=args.scale_max)
    if not 1.0 < config.scale_min <= config.scale_max:
        raise InfSceneError(f"need 1 < --scale-min <= --scale-max, got {config.scale_min} and {config.scale_max}")
    result = train(options, config, on_record=lambda record: print(json.dumps(record), flush=True))
    print(f"model written to {result.model_dir} after {result.step} steps ({result.seconds / 60:.1f} min)")
    return 0
