"""How much the e2diffsr latent could add, and how much of it the diffusion recovers.

    .venv/bin/python bench/e2diffsr_prior_gap.py --images ../shared/data/sr_dev --lr-side 40 \
        --out docs/bench/e2diffsr_prior_gap_srdev.json
    .venv/bin/python bench/e2diffsr_prior_gap.py --images "../shared/data/scenes/naip_ND_5m/*.tif" --lr-side 64 \
        --out docs/bench/e2diffsr_prior_gap_naip.json

On the centre crop of every image (the trainer's own `fixed_pairs`: area downsampling, no blur or noise),
at each scale, five decodings of one model are scored against the truth (PSNR on 8-bit values and the
high-frequency energy relative to the truth's, as bench/quality.py scores them):

- `regression`: z = 0, the regression branch alone;
- `oracle`: z = the prior encoder's latent of the truth itself. This is the ceiling of the latent path:
  what a perfect latent diffusion would give with this autoencoder;
- `full`: z = the 4-step reverse chain from pure noise (one fixed draw), the shipped model;
- `direct`: z = CondNet's own estimate of the truth's latent from the low-resolution image (the distillation
  target of Eq. 13, the chain's condition): what a deterministic regression of the latent gives;
- `bicubic`.

The latent columns say why `full` and `direct` land where they do: the std of the encoder's latents (diffusion
units) against the std of the estimate, and their correlation (1 = the estimate recovers the truth's latent).
A gap between `oracle` and `full` is the diffusion's to close; a gap between `oracle` and the truth (PSNR,
high-frequency energy) is the autoencoder's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from infscene.diffusion.schedule import Schedule
from infscene.models.e2diffsr.network import E2DiffSR
from infscene.models.e2diffsr.training import PairBatch, crop_sides, fixed_pairs, regression_alone, sample_latent
from infscene.models.registry import load_model
from infscene.raster.metrics import high_frequency_ratio, psnr
from infscene.training.data import load_hr_images
from infscene.training.images import to_uint8


def to_8bit(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) model units -> (B, C, H, W) 8-bit values as the output GeoTIFF holds them (metrics take C, H, W)."""
    return to_uint8(x).transpose(0, 3, 1, 2)


@torch.no_grad()
def decodings(model: E2DiffSR, batch: PairBatch, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, float]]]:
    """The outputs of the docstring and, for `full` and `direct`, how their latent compares with the truth's."""
    config = model.config
    target = model.encoder(batch.hr, batch.up)[0] / config.latent_scale
    z0, direct = sample_latent(model, batch, Schedule(config.gammas()).respaced(config.diffusion_steps), torch.Generator().manual_seed(seed))
    outputs = {
        "bicubic": batch.up,
        "regression": regression_alone(model, batch),
        "oracle": model.decode(batch.lr, target * config.latent_scale, batch.where, batch.scale),
        "full": model.decode(batch.lr, z0 * config.latent_scale, batch.where, batch.scale),
        "direct": model.decode(batch.lr, direct * config.latent_scale, batch.where, batch.scale),
    }
    latent = {
        method: {
            "target_std": float(target.std()),
            "estimate_std": float(estimate.std()),
            "corr_with_target": float(torch.corrcoef(torch.stack([estimate.flatten(), target.flatten()]))[0, 1]),
        }
        for method, estimate in (("full", z0), ("direct", direct))
    }
    return outputs, latent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="folder or glob of truth GeoTIFFs (never the training set)")
    p.add_argument("--model", default="resources/models/e2diffsr")
    p.add_argument("--lr-side", type=int, default=40, help="low-resolution side of each centre crop (default %(default)s)")
    p.add_argument("--scales", type=float, nargs="+", default=[4.0, 5.0])
    p.add_argument("--seed", type=int, default=0, help="the chain's noise draw (default %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="JSON file for the rows")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    if not isinstance(model, E2DiffSR):
        raise SystemExit(f"{args.model} is not an e2diffsr model")
    images = load_hr_images(args.images, model.config, crop_sides(args.lr_side, model.config.scale_min)[0])  # fixed_pairs skips those too small for a scale
    rows = []
    for scale in args.scales:
        for batch in fixed_pairs(images, model.config, [scale], args.lr_side):
            outputs, latent = decodings(model, batch, args.seed)
            truth = to_8bit(batch.hr)
            for method, output in outputs.items():
                pixels = to_8bit(output)
                rows.append({
                    "scale": scale, "method": method, "n": len(truth), "side": int(truth.shape[-1]),
                    "psnr": round(float(np.mean([psnr(o, t) for o, t in zip(pixels, truth)])), 3),
                    "hf_ratio": round(float(np.mean([high_frequency_ratio(o, t, scale) for o, t in zip(pixels, truth)])), 3),
                    **{k: round(v, 3) for k, v in latent.get(method, {}).items()},
                })
    for row in rows:
        print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "images": args.images, "lr_side": args.lr_side, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
