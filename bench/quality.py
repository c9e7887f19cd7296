"""Quality of super-resolution against a known truth (issue 5's measurements; issue 9's comparison of families).

Each truth image (real RGB imagery) is area-downsampled by the scale; the low-resolution image is written as a
GeoTIFF whose pixel size is the scale, super-resolved back, and compared with the truth:
RMSE, PSNR, SSIM, seam score (gradient jump on patch borders relative to everywhere, next to the same score of
the truth on the same borders), high-frequency energy relative to the truth (everywhere, and where the fused
grid's patches overlap against where one patch covers), LR-consistency (L1 between the
output area-downsampled to the input grid and the input), time, output megapixels per second and peak RAM.

Methods: `bicubic` (computed here, from the 8-bit input the models see), and each fusion mode of each
`--model` folder (several folders, of either family, in one run), each run through
`infscene.run.super_resolve` in a fresh process (bench/run_one.py, which samples its peak RAM);
`--regression-only` adds a row per e2diffsr model for its regression branch alone.
A row's `method` is `bicubic`, `MODEL/MODE` or `MODEL/regression`.

`--perceptual` (needs `make bench-setup`; bench/perceptual.py) adds opensr-test's figures to each row
(osr_*: consistency, synthesis, correctness; None at non-integer scales) and ends with FID/KID per
(scene, scale, method) on `--fid-crop` px tiles of every output and truth, in the summary file.
The summary (`--summary-out`, default OUT_summary.json) also gives each method's mean output megapixels per
second, its ratio to `--speed-reference` (default: the first model's first mode) and the largest peak RAM.

    .venv/bin/python bench/quality.py --scales 4 5 3.7 --steps 50 --out docs/bench/quality_cpu.json
    .venv/bin/python bench/quality.py --scales 5 --modes vcf --steps-curve 10 20 50 100 --out docs/bench/steps_cpu.json
    .venv/bin/python bench/quality.py --scenes sr_dev naip_ND_5m --scales 4 --modes bicubic vcf --perceptual \
        --model resources/models/sr3 resources/models/e2diffsr --regression-only --out out/families.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
import rasterio
from affine import Affine
from skimage.metrics import structural_similarity

from infscene.diffusion.fusion import FusionMode
from infscene.models.registry import DEFAULT_MODEL_DIR, load_config
from infscene.plan import SROptions, plan_run
from infscene.raster.metrics import high_frequency_ratio, lr_consistency, psnr, rmse, seam_score

from tables import markdown

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRUTHS = {
    "naip_ND_5m": [SHARED / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif"],
    "sr_dev": sorted((SHARED / "sr_dev").rglob("*.tif")),
}


def truth_crops(name: str, crop: int, max_images: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """Centre crops (3, crop, crop) of the RGB bands of the first `max_images` truth images at least that large."""
    found = 0
    for path in TRUTHS[name]:
        if max_images is not None and found >= max_images:
            return
        with rasterio.open(path) as ds:
            if min(ds.width, ds.height) < crop:
                continue
            row, col = (ds.height - crop) // 2, (ds.width - crop) // 2
            data = ds.read([1, 2, 3], window=((row, row + crop), (col, col + crop)))
        found += 1
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


def seams(image: np.ndarray, borders: list[int]) -> float:
    return max(seam_score(image, borders, axis=2), seam_score(image, borders, axis=1))


def plan_geometry(lr_path: Path, options: SROptions, size: int) -> tuple[list[int], np.ndarray]:
    """The patch borders (output pixels) and the patch cover map (size, size) of the engine's own plan.

    The plan's grid is in state pixels: output pixels for SR3, latent pixels (1/8) for e2diffsr.
    """
    plan = plan_run(lr_path, options)
    factor = getattr(plan, "canvas_factor", 1)
    state = np.zeros((plan.grid.height, plan.grid.width), int)
    borders = set()
    for p in plan.grid:
        rows, cols = p.slices
        state[rows, cols] += 1
        borders |= {rows.start * factor, rows.stop * factor}
    cover = np.repeat(np.repeat(state, factor, axis=0), factor, axis=1)[:size, :size]
    return sorted(b for b in borders if 0 < b < size), cover


@dataclasses.dataclass(frozen=True)
class Method:
    """One way of super-resolving: bicubic, or a model folder in a fusion mode (and variant)."""

    label: str
    mode: str
    model: Optional[Path] = None
    family: Optional[str] = None
    regression_only: bool = False


def methods(args: argparse.Namespace) -> list[Method]:
    """bicubic (if asked), then each model's modes, then its regression branch alone (--regression-only)."""
    folders = args.model or [None]
    names = [(m or DEFAULT_MODEL_DIR).resolve().name for m in folders]
    if len(set(names)) < len(names):  # two folders of one name: label them by their path
        names = [str(m or DEFAULT_MODEL_DIR) for m in folders]
    has_regression_only = "regression_only" in {f.name for f in dataclasses.fields(SROptions)}
    found = [Method("bicubic", "bicubic")] if "bicubic" in args.modes else []
    for folder, name in zip(folders, names):
        family = getattr(load_config(folder), "family", "sr3")
        found += [Method(f"{name}/{mode}", mode, folder, family) for mode in args.modes if mode != "bicubic"]
        if args.regression_only:
            if family == "sr3":
                continue  # SR3 has no regression branch
            if not has_regression_only:
                print(f"quality: this engine's SROptions has no regression_only: no {name}/regression rows", file=sys.stderr)
                continue
            found.append(Method(f"{name}/regression", "vcf", folder, family, regression_only=True))
    return found


def run_sr(lr_path: Path, out_path: Path, method: Method, scale: float, steps: Optional[int], args: argparse.Namespace) -> dict:
    """One super-resolution in a fresh process (bench/run_one.py): its JSON (wall_s, mp_per_s, peak_anon_mb...)."""
    cmd = [sys.executable, str(ROOT / "bench" / "run_one.py"), str(lr_path), str(out_path), "--scale", str(scale),
           "--mode", method.mode, "--seed", str(args.seed), "--device", args.device,
           "--batch-size", str(SROptions.batch_size)]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if method.model is not None:
        cmd += ["--model", str(method.model)]
    if args.no_lr_consistency:
        cmd += ["--no-lr-consistency"]
    if method.regression_only:
        cmd += ["--regression-only"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"quality: {method.label} at {scale}x failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sr_options(method: Method, scale: float, steps: Optional[int], args: argparse.Namespace) -> SROptions:
    extra = {} if steps is None else {"steps": steps}
    if method.regression_only:
        extra["regression_only"] = True
    return SROptions(scale=scale, mode=FusionMode(method.mode), seed=args.seed, model_dir=method.model,
                     lr_consistency=not args.no_lr_consistency, device=args.device, **extra)


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


def significant(x: float, digits: int = 4) -> float:
    """x to `digits` significant digits (speeds span 1e-4 to 1e2 megapixels per second)."""
    return float(f"{x:.{digits}g}")


OSR_KEYS = ("reflectance", "spectral", "spatial", "synthesis", "improvement", "omission", "hallucination")


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(one row per image, scale, method and steps; one summary row per scene, scale and method)."""
    if args.perceptual:
        import perceptual  # needs the benchmark dependencies: make bench-setup
    todo = methods(args)
    rows: list[dict] = []
    truth_features: dict[tuple, list[np.ndarray]] = {}  # (scene, scale) -> features of each truth's crops
    sr_features: dict[tuple, list[np.ndarray]] = {}  # (scene, scale, method) -> the same for its outputs
    with tempfile.TemporaryDirectory() as tmp:
        for scene in args.scenes:
            for name, full_truth in truth_crops(scene, args.crop, args.max_images):
                for scale in args.scales:
                    truth, low = degrade(full_truth, scale)
                    lr_path = Path(tmp) / "lr.tif"
                    write_low_res(low, scale, lr_path)
                    low_8bit = np.clip(np.rint(low), 0, 255)  # what the methods see
                    size = truth.shape[1]
                    geometry: dict[tuple, tuple[list[int], np.ndarray]] = {}

                    def grid_of(method: Method, mode: str, steps: Optional[int]) -> tuple[list[int], np.ndarray]:
                        """(patch borders, cover map) of this model's grid in `mode`, from the engine's plan."""
                        if (method.model, mode) not in geometry:
                            options = sr_options(dataclasses.replace(method, mode=mode), scale, steps, args)
                            geometry[(method.model, mode)] = plan_geometry(lr_path, options, size)
                        return geometry[(method.model, mode)]

                    if args.perceptual:
                        truth_features.setdefault((scene, scale), []).append(
                            perceptual.inception_features(perceptual.tile_crops(truth, args.fid_crop)))
                    for method in todo:
                        for steps in ([None] if method.mode == "bicubic" or method.regression_only
                                      else args.steps_curve or [args.steps]):
                            if method.mode == "bicubic":
                                start = time.perf_counter()
                                output = np.stack([cv2.resize(b, (size, size), interpolation=cv2.INTER_CUBIC) for b in low_8bit])
                                output = np.clip(np.rint(output), 0, 255)
                                wall = time.perf_counter() - start
                                run = {"wall_s": wall, "mp_per_s": size * size / 1e6 / max(wall, 1e-9),
                                       "peak_anon_mb": None, "steps": None}
                                # seams and cover on the first model's fused grid, as the fused rows
                                first = next((m for m in todo if m.mode != "bicubic"), Method("", "vcf"))
                                borders, cover = grid_of(dataclasses.replace(first, regression_only=False), "vcf", None)
                            else:
                                run = run_sr(lr_path, Path(tmp) / "sr.tif", method, scale, steps, args)
                                with rasterio.open(Path(tmp) / "sr.tif") as ds:
                                    output = ds.read().astype(np.float32)
                                borders = grid_of(method, method.mode, steps)[0]
                                cover = grid_of(method, "vcf", steps)[1]
                            row = {"scene": scene, "image": name, "scale": scale, "method": method.label,
                                   "model": None if method.mode == "bicubic" else (method.model or DEFAULT_MODEL_DIR).resolve().name,
                                   "family": method.family, "mode": method.mode,
                                   "variant": "regression_only" if method.regression_only else None,
                                   "steps": run["steps"],
                                   "seconds": round(run["wall_s"], 2),
                                   "mp_per_s": significant(run["mp_per_s"]),
                                   "peak_ram_mb": run["peak_anon_mb"],
                                   **measure(truth, low, output, scale, borders, cover)}
                            if args.perceptual:
                                figures = perceptual.opensr_figures(low_8bit, output, truth, scale)
                                row.update({f"osr_{k}": None if figures is None else round(figures[k], 4) for k in OSR_KEYS})
                                sr_features.setdefault((scene, scale, method.label, row["steps"]), []).append(
                                    perceptual.inception_features(perceptual.tile_crops(output, args.fid_crop)))
                            rows.append(row)
                            print(json.dumps(row), flush=True)
    return rows, summarise(rows, args, truth_features, sr_features)


def summarise(rows: list[dict], args: argparse.Namespace, truth_features: dict, sr_features: dict) -> list[dict]:
    """Per (scene, scale, method, steps): mean speed, its ratio to the reference method, peak RAM, FID/KID."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["scene"], row["scale"], row["method"], row["steps"]), []).append(row)
    reference = args.speed_reference or next((r["method"] for r in rows if r["method"] != "bicubic"), None)
    summary = []
    for (scene, scale, method, steps), members in groups.items():
        rams = [m["peak_ram_mb"] for m in members if m["peak_ram_mb"] is not None]
        entry = {"scene": scene, "scale": scale, "method": method, "steps": steps, "n": len(members),
                 "mp_per_s": significant(float(np.mean([m["mp_per_s"] for m in members]))),
                 "peak_ram_mb": max(rams) if rams else None}
        if args.perceptual:
            import perceptual

            sr, truth = np.concatenate(sr_features[(scene, scale, method, steps)]), np.concatenate(truth_features[(scene, scale)])
            entry.update({"fid": None, "kid": None, "kid_std": None, "crops": len(sr), "crop_px": args.fid_crop})
            if min(len(sr), len(truth)) >= 2:  # else: images too small for two crops (--crop, --fid-crop)
                figures = perceptual.fid_kid_from_features(sr, truth)
                entry.update(fid=round(figures["fid"], 2), kid=round(figures["kid"], 5), kid_std=round(figures["kid_std"], 5))
        summary.append(entry)
    for entry in summary:
        ref = next((e for e in summary if e["method"] == reference and e["scene"] == entry["scene"]
                    and e["scale"] == entry["scale"]), None)
        entry["speed_vs_reference"] = None if ref is None else significant(entry["mp_per_s"] / ref["mp_per_s"])
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", nargs="+", default=["naip_ND_5m", "sr_dev"], choices=list(TRUTHS))
    p.add_argument("--scales", type=float, nargs="+", default=[4, 5, 3.7])
    p.add_argument("--modes", nargs="+", default=["bicubic", "independent", "average", "vcf"],
                   choices=["bicubic", *(m.value for m in FusionMode)])
    p.add_argument("--steps", type=int,
                   help="reverse steps for every model (default: each family's own, SR3 50, e2diffsr its T = 4)")
    p.add_argument("--steps-curve", type=int, nargs="+", help="run each mode at each of these step counts")
    p.add_argument("--crop", type=int, default=256, help="side of the centre crop of each truth image")
    p.add_argument("--max-images", type=int, help="use only the first N images of each scene")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=Path, nargs="+", help="model folders, of either family (default: the bundled model)")
    p.add_argument("--regression-only", action="store_true",
                   help="also run each e2diffsr model's regression branch alone (SROptions.regression_only)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-lr-consistency", action="store_true")
    p.add_argument("--perceptual", action="store_true",
                   help="opensr-test figures per row and FID/KID per scene, scale and method (make bench-setup)")
    p.add_argument("--fid-crop", type=int, default=64, help="side of the tiles cut from outputs and truths for FID/KID")
    p.add_argument("--speed-reference", help="method whose megapixels per second the others are divided by")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--summary-out", type=Path, help="per scene, scale and method (default: OUT_summary.json)")
    args = p.parse_args()
    rows, summary = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    summary_out = args.summary_out or args.out.with_name(args.out.stem + "_summary.json")
    summary_out.write_text(json.dumps(summary, indent=1) + "\n")
    print(markdown(summary, list(summary[0])) if summary else "no rows")


if __name__ == "__main__":
    main()
