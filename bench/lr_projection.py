"""Can the LR-consistency keep every block mean exact without drawing the input's pixel grid? (issue 38, item 1)

The engine's projection (decode.project_block_means) moves each LR pixel's block of output pixels by its mean
residual: exact, but a step at every block border. The design measured here spreads the same residuals smoothly:
the correction is the bilinear interpolation U a of one coefficient per LR pixel, solved so that its block means are
the residuals r, D U a = r (D: block means). Per axis T = D U is tridiagonal and diagonally dominant (3/4 on its
diagonal at 2x, 4x or 8x, never under 1/2), so a = T_rows^-1 r T_cols^-T exists, and T's inverse falls by about 0.17
a pixel (a tile could solve it over 6 LR pixels around its core and get the whole scene's correction to 3e-5); the
exact block projection after it removes what float rounding leaves. A residual that alternates from block to block
has exact means only with a correction that alternates too: its steps gather on the borders whatever the spread, and
at 2x (two pixels a block) the least-steps correction of that pattern is the block-constant one.

Measured on whole crops (centre crops of the truths, area-downsampled, 8-bit, as bench/quality.py makes them):
bicubic and the shipped e2diffsr model (its chain sampled once per crop from seeded noise) at details 0, 0.3, 0.7
and 1, each projected three ways: `block` (the engine's), `smooth`, and `hybrid` (the regression output projected
block-wise, the texture head's drawing given zero block means smoothly). Figures: PSNR against the truth and the LR
grid excess (bench/quality.py's lr_grid, the output's less the truth's).

    .venv/bin/python bench/lr_projection.py --scales 2 4 5 --crop 192 --max-images 4 \\
        --out docs/bench/lr_projection_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (bench/quality.py: the truths, their degradation and the measures)

from infscene.diffusion.schedule import Schedule  # noqa: E402
from infscene.models.e2diffsr.decode import owner, project_block_means  # noqa: E402
from infscene.models.e2diffsr.denoiser import reverse_chain  # noqa: E402
from infscene.models.e2diffsr.network import LATENT_FACTOR, E2DiffSR, Sampling, bicubic_base, fold_condition  # noqa: E402
from infscene.models.registry import load_model  # noqa: E402

DETAILS = (0.0, 0.3, 0.7, 1.0)


def bilinear_weights(lr_len: int, out_len: int) -> np.ndarray:
    """U (out_len x lr_len): each output pixel's bilinear weights on the LR pixel centres, the nearest centre's value
    held beyond the first and the last."""
    position = np.clip((np.arange(out_len, dtype=np.float64) + 0.5) * lr_len / out_len - 0.5, 0, lr_len - 1)
    left = np.minimum(np.floor(position).astype(int), lr_len - 1)
    right = np.minimum(left + 1, lr_len - 1)
    weights = np.zeros((out_len, lr_len))
    np.add.at(weights, (np.arange(out_len), left), 1.0 - (position - left))
    np.add.at(weights, (np.arange(out_len), right), position - left)
    return weights


def block_means(lr_len: int, out_len: int) -> np.ndarray:
    """D (lr_len x out_len): the mean over each LR pixel's block of output pixels (decode.owner's blocks)."""
    means = np.zeros((lr_len, out_len))
    means[owner(lr_len, out_len), np.arange(out_len)] = 1.0
    return means / means.sum(axis=1, keepdims=True)


def spread_matrix(lr_len: int, out_len: int) -> np.ndarray:
    """S = U (D U)^-1 (out_len x lr_len): block residuals to the smooth correction whose block means they are."""
    interpolation = bilinear_weights(lr_len, out_len)
    return np.linalg.solve((block_means(lr_len, out_len) @ interpolation).T, interpolation.T).T


def smooth_projection(output: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """output (..., C, H, W) with every LR block's mean set to lr's (..., C, h, w) by the smooth correction, then the
    exact block projection of what float rounding leaves."""
    (h, w), (height, width) = lr.shape[-2:], output.shape[-2:]
    as_tensor = lambda m: torch.from_numpy(m).to(output.dtype)  # noqa: E731
    residual = lr - as_tensor(block_means(h, height)) @ output @ as_tensor(block_means(w, width)).T
    corrected = output + as_tensor(spread_matrix(h, height)) @ residual @ as_tensor(spread_matrix(w, width)).T
    return project_block_means(corrected, lr, owner(h, height), owner(w, width))


def block_projection(output: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    (h, w), (height, width) = lr.shape[-2:], output.shape[-2:]
    return project_block_means(output, lr, owner(h, height), owner(w, width))


PROJECTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "block": block_projection, "smooth": smooth_projection}


def model_outputs(model: E2DiffSR, lr: torch.Tensor, out: int, scale: float, seed: int) -> Iterator[tuple[float, torch.Tensor, torch.Tensor]]:
    """(detail, regression output, the head's drawing) for each detail, in model units, one chain per crop."""
    config, n = model.config, lr.shape[-1]
    where, scales = Sampling.whole((n, n), (out, out)), torch.full((1,), scale)
    cond, direct = model.condition(fold_condition(bicubic_base(lr, where)))
    steps = Schedule(config.gammas()).respaced(config.diffusion_steps)
    generator = torch.Generator().manual_seed(seed)
    shape = (1, config.latent_channels, -(-out // LATENT_FACTOR), -(-out // LATENT_FACTOR))
    z = reverse_chain(model, cond, direct, scales, steps, [torch.randn(shape, generator=generator) for _ in range(len(steps) + 1)])
    for detail in DETAILS:
        z0 = config.latent_share(detail) * z
        base = model.decode(lr, z0 * config.latent_scale, where, scales)[..., :out, :out]
        drawing = model.texture(base, z0, scales)[..., :out, :out] if detail and model.texture is not None else 0 * base
        yield detail, base, drawing


def measure(truth: np.ndarray, image: torch.Tensor, lr_side: int, model_units: bool) -> tuple[float, float]:
    values = (image[0].numpy() + 1.0) * 127.5 if model_units else image.numpy()
    values = np.clip(np.rint(values), 0, 255)
    return quality.psnr(values, truth), quality.lr_grid(values, (lr_side, lr_side)) - quality.lr_grid(truth, (lr_side, lr_side))


@torch.no_grad()
def rows_for(scene: str, scale: float, args: argparse.Namespace, model: E2DiffSR) -> Iterator[dict]:
    # The model runs on whole crops: an output side that is a multiple of the latent's 8 pixels and of the scale.
    side = max(s for s in range(LATENT_FACTOR, args.crop + 1, LATENT_FACTOR) if float(s / scale).is_integer())
    for index, (name, crop) in enumerate(quality.truth_crops(scene, args.crop, args.max_images)):
        truth, low = quality.degrade(crop[:, :side, :side], scale)
        lr8 = np.clip(np.rint(low), 0, 255).astype(np.float32)
        n, out = lr8.shape[-1], truth.shape[-1]
        bicubic = torch.from_numpy(np.stack([cv2.resize(b, (out, out), interpolation=cv2.INTER_CUBIC) for b in lr8]))
        for label, project in PROJECTIONS.items():
            psnr, grid = measure(truth, project(bicubic, torch.from_numpy(lr8)), n, False)
            yield {"scene": scene, "image": name, "scale": scale, "method": "bicubic", "projection": label, "psnr": psnr, "lr_grid_excess": grid}
        lr = torch.from_numpy(lr8 / 127.5 - 1.0)[None]
        for detail, base, drawing in model_outputs(model, lr, out, scale, args.seed + index):
            made = {label: project(base + detail * drawing, lr) for label, project in PROJECTIONS.items()}
            made["hybrid"] = block_projection(base, lr) + detail * smooth_projection(drawing, torch.zeros_like(lr))
            for label, image in made.items():
                psnr, grid = measure(truth, image, n, True)
                yield {"scene": scene, "image": name, "scale": scale, "method": f"e2diffsr/detail={detail:g}",
                       "projection": label, "psnr": psnr, "lr_grid_excess": grid}


def summary(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["scene"], row["scale"], row["method"], row["projection"]), []).append(row)
    return [{"scene": s, "scale": sc, "method": m, "projection": p, "n": len(g),
             "psnr": round(float(np.mean([r["psnr"] for r in g])), 3),
             "lr_grid_excess": round(float(np.mean([r["lr_grid_excess"] for r in g])), 3)}
            for (s, sc, m, p), g in groups.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["sr_dev", "naip_ND_5m"], choices=list(quality.TRUTHS))
    p.add_argument("--scales", type=float, nargs="+", default=[2.0, 4.0, 5.0])
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--max-images", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=Path, help="an e2diffsr model folder (default: the bundled model)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = load_model(args.model)
    rows = [row for scene in args.scenes for scale in args.scales for row in rows_for(scene, scale, args, model)]
    args.out.write_text(json.dumps({"rows": rows, "summary": summary(rows)}, indent=1) + "\n")
    for entry in summary(rows):
        print(json.dumps(entry))


if __name__ == "__main__":
    main()
