"""Iceplant maps from an original scene vs from its degraded-then-reconstructed versions.

Our stand-in for the paper's Table 3 while we have no iceplant imagery: the scene is cropped to a
multiple of the scale, area-averaged by the scale (what a coarser sensor records), reconstructed
to the original grid by bicubic interpolation and by `infscene sr` (``independent``, ``vcf``),
and the probability layer of each is compared with the original's: IoU of the maps thresholded
at 0.5 (the original's map as reference), mean absolute difference of the probabilities, and the
share of pixels flagged.

    .venv/bin/python bench/iceplant_agreement.py [--scene TIF] [--scale 5] [--modes bicubic,independent,vcf]
        [--model SR_MODEL_DIR] [--steps N] [--work DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from infscene.iceplant import write_iceplant_probability

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT.parent / "shared" / "data" / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"


def write_like(path: Path, data: np.ndarray, profile: dict, transform: Affine) -> Path:
    out = {k: v for k, v in profile.items() if k not in ("blockxsize", "blockysize")}
    out.update(height=data.shape[1], width=data.shape[2], transform=transform, tiled=False, compress="deflate")
    with rasterio.open(path, "w", **out) as dst:
        dst.write(data)
    return path


def degrade(scene: Path, scale: int, work: Path) -> tuple[Path, Path]:
    """(original cropped to a multiple of scale, its area-averaged low-resolution version)."""
    with rasterio.open(scene) as src:
        h, w = src.height // scale * scale, src.width // scale * scale
        hr = src.read(window=Window(0, 0, w, h))
        profile, transform, interp = src.profile, src.transform, src.colorinterp
    lr = np.stack([cv2.resize(b, (w // scale, h // scale), interpolation=cv2.INTER_AREA) for b in hr])
    hr_path = write_like(work / "original.tif", hr, profile, transform)
    lr_path = write_like(work / f"lr_x{scale}.tif", lr, profile, transform * Affine.scale(scale))
    for path in (hr_path, lr_path):
        with rasterio.open(path, "r+") as ds:
            ds.colorinterp = interp
    return hr_path, lr_path


def bicubic(lr_path: Path, hr_path: Path, out: Path) -> Path:
    with rasterio.open(hr_path) as hr, rasterio.open(lr_path) as lr:
        up = np.stack([cv2.resize(b.astype(np.float32), (hr.width, hr.height), interpolation=cv2.INTER_CUBIC)
                       for b in lr.read()])
        data = np.clip(np.rint(up), 0, 255).astype(np.uint8)
        path = write_like(out, data, hr.profile, hr.transform)
        interp = hr.colorinterp
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = interp
    return path


def super_resolve(lr_path: Path, out: Path, scale: int, mode: str, model: Path | None, steps: int | None) -> Path:
    cmd = [sys.executable, "-m", "infscene", "sr", str(lr_path), str(out), "--scale", str(scale), "--mode", mode,
           "--progress", "none", *(["--model", str(model)] if model else []), *(["--steps", str(steps)] if steps else [])]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def read_probability(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    both = ~np.isnan(reference) & ~np.isnan(other)
    a, b = reference[both] > 0.5, other[both] > 0.5
    union = np.sum(a | b)
    return {"iou": float(np.sum(a & b) / union) if union else 1.0,
            "mad": float(np.mean(np.abs(reference[both] - other[both]))),
            "flagged": float(b.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--modes", default="bicubic,independent,vcf")
    parser.add_argument("--model", type=Path, help="SR model folder (default: the shipped one)")
    parser.add_argument("--steps", type=int, help="reverse diffusion steps for `infscene sr` (default: its own)")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "iceplant_agreement")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    hr_path, lr_path = degrade(args.scene, args.scale, args.work)
    reference = read_probability(write_iceplant_probability(hr_path, args.work / "p_original.tif"))
    print(f"scene {args.scene.name}, x{args.scale}; original map flags {np.nanmean(reference > 0.5):.4f} of pixels\n")
    print("| reconstruction | IoU (p > 0.5) vs original | mean abs. diff. | share flagged | seconds |\n|---|---|---|---|---|")
    for mode in args.modes.split(","):
        start = time.monotonic()
        image = args.work / f"{mode}.tif"
        if mode == "bicubic":
            bicubic(lr_path, hr_path, image)
        else:
            super_resolve(lr_path, image, args.scale, mode, args.model, args.steps)
        m = agreement(reference, read_probability(write_iceplant_probability(image, args.work / f"p_{mode}.tif")))
        print(f"| {mode} | {m['iou']:.4f} | {m['mad']:.4f} | {m['flagged']:.4f} | {time.monotonic() - start:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
