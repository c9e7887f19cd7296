"""The `infscene train` command: the Trainer with the objective, flags and new config of the chosen family.

It sits with the training code but above the registry (the layer order puts it with the command line): it is
the one place where training meets the families, each of which brings its own flags and objective.
"""
from __future__ import annotations

import argparse
import json
from typing import Optional

from ..errors import InfSceneError
from ..execution.devices import resolve_device
from ..modelformat.contract import ModelContract
from ..modelformat.files import FAMILY_WHEN_ABSENT
from ..models.registry import FAMILIES, family_of, load_config
from ..training.trainer import RecordCallback, Trainer, TrainOptions, TrainResult


def train(options: TrainOptions, config: ModelContract, on_record: Optional[RecordCallback] = None) -> TrainResult:
    """Train (or resume) a model of the config's family and write its EMA weights to `options.out` with save_model.

    An interrupt (Ctrl-C, or Cancelled raised by the CLI's SIGTERM handler) first writes a
    checkpoint of the last finished step, without validation, so --resume loses no work.
    """
    return Trainer(options, config, family_of(config).objective, resolve_device(options.device), on_record).run()


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `infscene train` to the CLI's subcommands: the generic flags, then each family's own."""
    defaults, contract = TrainOptions(hr=[], val=None, out=""), ModelContract()
    parser = subparsers.add_parser(
        "train",
        help="train an SR3 model on high-resolution GeoTIFFs",
        description="Train an SR3 super-resolution model: low-resolution inputs are made from the "
        "high-resolution rasters by area downsampling at a scale drawn per batch.",
    )
    parser.add_argument("--family", choices=list(FAMILIES), default=FAMILY_WHEN_ABSENT, help="model family to train (default %(default)s; with --init, the initial model's)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=defaults.precision, help="e2diffsr stage 3: bf16 runs the forward passes under autocast, weights kept in fp32 (default %(default)s)")
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
    parser.add_argument("--scale-min", type=float, default=contract.scale_min, help="smallest scale factor (default %(default)s)")
    parser.add_argument("--scale-max", type=float, default=contract.scale_max, help="largest scale factor (default %(default)s)")
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
    for family in FAMILIES.values():
        family.add_train_flags(parser)
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
        freeze_prior=args.freeze_prior,
        latent_loss=args.latent_loss,
        hr_crop=args.hr_crop, perceptual_weight=args.perceptual_weight, l1_weight=args.l1_weight, adversarial_factor=args.adversarial_factor,
        energy_weight=args.energy_weight, critic_input=args.critic_input, train_detail=args.train_detail,
        texture_channels=args.texture_channels, critic_lr=args.critic_lr, critic_from=args.critic_from, precision=args.precision,
    )
    config = load_config(args.init) if args.init else FAMILIES[args.family].new_config(args)
    if not 1.0 < config.scale_min <= config.scale_max:
        raise InfSceneError(f"need 1 < --scale-min <= --scale-max, got {config.scale_min} and {config.scale_max}")
    result = train(options, config, on_record=lambda record: print(json.dumps(record), flush=True))
    print(f"model written to {result.model_dir} after {result.step} steps ({result.seconds / 60:.1f} min)")
    return 0
