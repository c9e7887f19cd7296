"""Quality of super-resolution against a known truth (issue 5's measurements).

Each truth image (real RGB imagery) is area-downsampled by the scale; the low-resolution image is written as a
GeoTIFF whose pixel size is the scale, super-resolved back, and compared with the truth:
RMSE, PSNR, SSIM, seam score (gradient jump on patch borders relative to everywhere, next to the same score of
the truth on the same borders), high-frequency energy relative to the truth (everywhere, and where the fused
grid's patches overlap against where one patch covers), LR-consistency (L1 between the
output area-downsampled to the input grid and the input) and time.

    .venv/bin/python bench/quality.py --scales 4 5 3.7 --steps 50 --out docs/bench/quality_cpu.json
    .venv/bin/python bench/quality.py --scales 5 --modes vcf --steps-curve 10 20 50 100 --out docs/bench/steps_cpu.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import rasterio
from affine import Affine
from skimage.metrics import structural_similarity

from infscene.fusion import FusionMode
from infscene.grid import PatchGrid, axis_starts
from infscene.metrics import high_frequency_ratio, lr_consistency, psnr, rmse, seam_score
from infscene.model import load_config
from infscene.pipeline import SROptions, super_resolve

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRUTHS = {
    "naip_ND_5m": [SHARED / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"],
    "sr_dev": sorted((SHARED / "sr_dev").rglob("*.tif")),
}


def truth_crops(name: str, crop: int, max_images: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """Centre crops (3, crop, crop) of the RGB bands of the first `max_images` truth images."""
    for path in TRUTHS[name][:max_images]:
        with rasterio.open(path) as ds:
            if min(ds.width, ds.height) < crop:
                continue
            row, col = (ds.height - crop) // 2, (ds.width - crop) // 2
            data = ds.read([1, 2, 3], window=((row, row + crop), (col, col + crop)))
        yield path.stem, data.astype(np.float32)


def degrade(truth: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(truth cropped to round(n * scale), its area-downsampling to n pixels), n = floor(size / scale)."""
    n = int(truth.shape[1] // scale)
    size = round(n * scale)
    truth = truth[:, :size, :size]
    low = np.stack([cv2.resize(b, (n, n), interpolation=cv2.INTER_AREA) for b in truth])
    return truth, low


def write_low_res(low: np.ndarray, scale: float, path: Path) -> None:
    profile = dict(driver="GTiff", width=low.shape[2], height=low.shape[1], count=3, dtype="uint8",
                   transform=Affine(scale, 0, 1000.0, 0, -scale, 1000.0))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.clip(np.rint(low), 0, 255).astype(np.uint8))


def patch_borders(size: int, patch: int, overlap: int) -> list[int]:
    starts = axis_starts(max(size, patch), patch, overlap)
    return sorted({*starts[1:], *(s + patch for s in starts[:-1])})


def seams(image: np.ndarray, borders: list[int]) -> float:
    return max(seam_score(image, borders, axis=2), seam_score(image, borders, axis=1))


def fused_cover(size: int, patch: int) -> np.ndarray:
    """How many patches of the fused modes' grid (overlap a quarter patch) cover each pixel."""
    cover = np.zeros((size, size), int)
    for p in PatchGrid(size, size, patch, patch // 4):
        cover[p.slices] += 1
    return cover


def measure(truth: np.ndarray, low: np.ndarray, output: np.ndarray, scale: float, borders: list[int], cover: np.ndarray) -> dict:
    return {
        "rmse": round(rmse(output, truth), 3),
        "psnr": round(psnr(output, truth), 3),
        "ssim": round(float(structural_similarity(output, truth, channel_axis=0, data_range=255)), 4),
        "seam": round(seams(output, borders), 3),
        "seam_truth": round(seams(truth, borders), 3),
        "hf_ratio": round(high_frequency_ratio(output, truth, scale), 3),
        # texture where the fused grid's patches overlap against where one patch covers (1 = uniform)
        "hf_overlap_vs_single": round(high_frequency_ratio(output, truth, scale, cover >= 2)
                                      / high_frequency_ratio(output, truth, scale, cover == 1), 3),
        "lr_l1": round(lr_consistency(output, low), 3),
    }


def run(args: argparse.Namespace) -> list[dict]:
    config = load_config(args.model)
    patch = config.patch_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scene in args.scenes:
            for name, full_truth in truth_crops(scene, args.crop, args.max_images):
                for scale in args.scales:
                    truth, low = degrade(full_truth, scale)
                    lr_path = Path(tmp) / "lr.tif"
                    write_low_res(low, scale, lr_path)
                    size = truth.shape[1]
                    cover = fused_cover(size, patch)
                    for mode in args.modes:
                        for steps in args.steps_curve or [args.steps]:
                            start = time.perf_counter()
                            if mode == "bicubic":
                                output = np.stack([cv2.resize(b, (size, size), interpolation=cv2.INTER_CUBIC) for b in low])
                                output = np.clip(np.rint(output), 0, 255)
                                borders = patch_borders(size, patch, patch // 4)
                            else:
                                options = SROptions(scale=scale, steps=steps, mode=FusionMode(mode), seed=args.seed,
                                                    model_dir=args.model, lr_consistency=not args.no_lr_consistency)
                                out = super_resolve(lr_path, Path(tmp) / "sr.tif", options)
                                with rasterio.open(out) as ds:
                                    output = ds.read().astype(np.float32)
                                overlap = 0 if mode == "independent" else patch // 4
                                borders = patch_borders(size, patch, overlap)
                            row = {"scene": scene, "image": name, "scale": scale, "mode": mode,
                                   "steps": None if mode == "bicubic" else steps,
                                   "seconds": round(time.perf_counter() - start, 1),
                                   **measure(truth, low, output, scale, borders, cover)}
                            rows.append(row)
                            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", nargs="+", default=["naip_ND_5m", "sr_dev"], choices=list(TRUTHS))
    p.add_argument("--scales", type=float, nargs="+", default=[4, 5, 3.7])
    p.add_argument("--modes", nargs="+", default=["bicubic", "independent", "average", "vcf"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--steps-curve", type=int, nargs="+", help="run each mode at each of these step counts")
    p.add_argument("--crop", type=int, default=256, help="side of the centre crop of each truth image")
    p.add_argument("--max-images", type=int, help="use only the first N images of each scene")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=Path)
    p.add_argument("--no-lr-consistency", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
