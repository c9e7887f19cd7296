"""The Trainer shared by every model family: what one training run does besides its objective.

The Trainer owns the optimizer (AdamW with a short warm-up and an optional cosine decay), an exponential
moving average (EMA) of the weights (what gets saved as the model, because EMA weights give much cleaner
diffusion samples than the raw ones), checkpoints and resume (checkpoints.py), the time limit, the log and
the best weights so far. What is optimised is an Objective that the caller hands in: a family's
(models/<family>/training.py), so this module never imports a family. Runs on a CPU (slowly) and on CUDA.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol, Sequence

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..errors import Cancelled, InfSceneError
from ..modelformat.contract import ModelContract
from ..modelformat.folder import save_model
from .checkpoints import AUXILIARY_FILE, complete_checkpoints, load_checkpoint, save_checkpoint
from .data import step_streams

LOG_FILE = "train_log.jsonl"
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
    freeze_prior: bool = False  # stage 1 from --init: train the regression branch only, the latent left as it is
    latent_loss: str = "l1"  # stage 2: "l1" (Eq. 13, the chain's median) or "energy" (a proper score: samples)
    # e2diffsr stage 3 (texture head): truth crop side (0: from lr_crop), loss weights, head width, critic rate.
    hr_crop: int = 0
    perceptual_weight: float = 1.0
    l1_weight: float = 1.0
    adversarial_factor: float = 0.5
    energy_weight: float = 0.0
    critic_input: str = "image"
    train_detail: str = "full"  # "full": the head trained at detail 1; "every": at a detail drawn per batch (TRAIN_DETAILS)
    texture_channels: int = 64
    critic_lr: float = 1e-4
    critic_from: Optional[str] = None  # a stage-3 checkpoint whose critic (and its optimizer) the game starts from
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


class EMA:
    """Exponential moving average of the weights, with a warm-up so early checkpoints are usable.

    The decay is min(decay, (1 + step) / (10 + step)): a short run is not dominated by the
    random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
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
    """The fields of a config that the weights depend on: not the provenance fields, nor `default_detail`, a run
    setting the benchmark picks after training (a run resumed from a shipped model must not be refused for it)."""
    return {k: v for k, v in config.items()
            if k not in ("train_pixel_size_m", "trained", "notes", "latent_scale", "default_detail")}


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


ObjectiveFactory = Callable[[TrainOptions, ModelContract, torch.device], Objective]


class Trainer:
    """The state of one run (model, EMA, optimizer, step, log) and its three actions: step, checkpoint, finish."""

    def __init__(self, options: TrainOptions, config: ModelContract, make_objective: ObjectiveFactory, device: torch.device,
                 on_record: Optional[RecordCallback] = None) -> None:
        """`make_objective` is the config's family's (registry); `device` where the model trains (options.device
        resolved by the caller)."""
        if options.threads:
            torch.set_num_threads(options.threads)
        self.options, self.config, self.on_record = options, config, on_record
        self.device = device
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
        state = load_checkpoint(existing[-1], self.model, self.ema.model, self.optimizer)
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
        save_checkpoint(self.options.checkpoints, self.step, self.model, self.ema.model, self.optimizer, extra, auxiliary)

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


