"""Quality of super-resolution against a known truth (issue 5's measurements; issue 9's comparison of families).

Each truth image (real RGB imagery) is area-downsampled by the scale; the low-resolution image is written as a
GeoTIFF whose pixel size is the scale, super-resolved back, and compared with the truth:
RMSE, PSNR, SSIM, seam score (gradient jump on patch borders relative to everywhere, next to the same score of
the truth on the same borders), high-frequency energy relative to the truth (everywhere, and where the fused
grid's patches overlap against where one patch covers), LR-consistency (L1 between the
output area-downsampled to the input grid and the input), time, output megapixels per second and peak RAM.

Methods: two baselines computed here from the 8-bit input the models see, `bicubic` and `bicubic+proj`
(bicubic followed by the exact LR projection the e2diffsr decoder applies: every LR block's mean residual added
to its pixels, so a model's margin over it is what the model adds beyond consistency with its input), both
whenever `--modes` names bicubic; and each fusion mode of each `--model` folder (several folders, of either
family, in one run) at the model's default detail, each run through `infscene.run.super_resolve` in a
fresh process (bench/run_one.py, which samples its peak RAM). `--details D...` adds, for every e2diffsr model,
a row per value in the engine's default fusion mode (0: the regression branch alone, 1: the full model); a
value a model cannot take (between 0 and 1 without a texture head) is skipped with a note on stderr.
`--self-ensemble` adds, for every e2diffsr model, a row at detail 0 with --self-ensemble (the mean of its decodes
under the 8 flips and rotations), whose `seconds` beside the detail=0 row's is the option's cost.
A row's `method` is `bicubic`, `bicubic+proj`, `MODEL/MODE`, `MODEL/detail=D` or `MODEL/detail=0+ensemble`.

`--perceptual` (needs `make bench-setup`; bench/perceptual.py) adds opensr-test's figures to each row
(osr_*: consistency, synthesis, correctness; None at non-integer scales) and ends with FID/KID per
(scene, scale, method) on `--fid-crop` px tiles of every output and truth, in the summary file.
The summary (`--summary-out`, default OUT_summary.json) gives per (scene, scale, method) the means of PSNR, SSIM,
hf_ratio, seam, seam_truth and lr_l1, the seam ratio (mean seam over the truth's), the seam against the other
lines of the lattice the borders sit on (`seam_vs_lattice`: 1 = no seam of the fusion's own, whatever period the
model's texture has), the PSNR margins over both
baselines (`psnr_vs_bicubic`, `psnr_vs_bicubic_proj`), the mean output megapixels per second, its ratio to
`--speed-reference` (default: the first model's first mode) and the largest peak RAM, so that a docs table can
be written from it alone: `--markdown PATH` writes it as one (the table is also printed at the end).

    .venv/bin/python bench/quality.py --scales 4 5 3.7 --steps 50 --out docs/bench/quality_cpu.json
    .venv/bin/python bench/quality.py --scales 5 --modes vcf --steps-curve 10 20 50 100 --out docs/bench/steps_cpu.json
    .venv/bin/python bench/quality.py --scenes sr_dev naip_ND_5m --scales 4 --modes bicubic vcf --perceptual \
        --model resources/models/sr3 resources/models/e2diffsr --details 0 1 --out out/families.json \
        --markdown out/families.md
    .venv/bin/python bench/quality.py --scenes sr_dev --scales 4 --modes bicubic vcf --max-images 1 --crop 128 \
        --details 0 1 --perceptual --out /tmp/q.json --markdown /tmp/q.md   # a quick check, end to end
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
import rasterio
import torch
from affine import Affine
from skimage.metrics import structural_similarity

from infscene.diffusion.fusion import FusionMode
from infscene.errors import InfSceneError
from infscene.modelformat.contract import ModelContract
from infscene.models.e2diffsr.decode import owner, project_block_means
from infscene.models.e2diffsr.family import resolve_detail
from infscene.models.e2diffsr.network import E2DiffSRConfig
from infscene.modelformat.files import DEFAULT_MODEL_DIR
from infscene.models.registry import load_config
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


def lr_grid(image: np.ndarray, lr_shape: tuple[int, int]) -> float:
    """The mean |step| between neighbouring output pixels across the LR pixel borders (where the owner changes)
    over the mean |step| elsewhere, averaged over rows and columns: 1 = the input's pixel grid is not drawn. An
    output's figure less the truth's (`lr_grid_excess` in the summary) is what the method adds (issue 38)."""
    ratios = []
    for axis, lr_len in ((2, lr_shape[1]), (1, lr_shape[0])):
        steps = np.abs(np.diff(image.astype(np.float64), axis=axis)).mean(axis=(0, 3 - axis))
        owners = owner(lr_len, image.shape[axis])
        border = owners[1:] != owners[:-1]
        ratios.append(steps[border].mean() / steps[~border].mean())
    return float(np.mean(ratios))


def lattice_lines(borders: list[int], size: int) -> list[int]:
    """The lines of the lattice the patch borders sit on (multiples of their gcd) that are not borders.

    A model can leave steps at every line of a period of its own (e2diffsr's latent pixels are 8 output pixels, the
    LR projection works per input pixel) that the seam score also sees at the borders: the score on these lines
    tells such a texture period from a seam the patch fusion leaves."""
    period = int(np.gcd.reduce(borders)) if borders else 0
    return [b for b in range(period, size, period) if b not in borders] if period > 1 else []


def plan_geometry(lr_path: Path, options: SROptions, size: int) -> tuple[list[int], np.ndarray]:
    """The patch borders (output pixels) and the patch cover map (size, size) of the engine's own plan.

    The plan's grid is in state pixels: output pixels for SR3, latent pixels (1/8) for e2diffsr.
    """
    plan = plan_run(lr_path, options)
    factor = plan.cond_factor
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
    """One way of super-resolving: a baseline computed here, or a model folder in a fusion mode at a detail."""

    label: str
    mode: str  # "bicubic" for both baselines, else a fusion mode
    model: Optional[Path] = None
    family: Optional[str] = None
    detail: Optional[float] = None  # e2diffsr's --detail; None: the model's default
    lr_projection: bool = False  # bicubic+proj: the bicubic output made consistent with its input
    self_ensemble: bool = False  # e2diffsr's --self-ensemble (at detail 0)


def details_taken(config: ModelContract, name: str, details: list[float]) -> list[float]:
    """The --details values this model can run, judged by the engine's own rule (resolve_detail), so that one
    value a model refuses (0.5 without a texture head) costs its rows, named on stderr, not the whole run."""
    if details and not isinstance(config, E2DiffSRConfig):
        print(f"quality: {name} is not an e2diffsr model (no --detail): no detail rows", file=sys.stderr)
        return []
    taken = []
    for detail in details:
        try:
            resolve_detail(detail, config)
        except InfSceneError as exc:
            print(f"quality: {name}/detail={detail:g} skipped: {exc}", file=sys.stderr)
            continue
        taken.append(detail)
    return taken


def methods(args: argparse.Namespace) -> list[Method]:
    """bicubic and bicubic+proj (if bicubic is asked), then each model's modes at its default detail, then each
    e2diffsr model at each of --details in the engine's default fusion mode."""
    folders = args.model or [None]
    names = [(m or DEFAULT_MODEL_DIR).resolve().name for m in folders]
    if len(set(names)) < len(names):  # two folders of one name: label them by their path
        names = [str(m or DEFAULT_MODEL_DIR) for m in folders]
    found = []
    if "bicubic" in args.modes:
        found += [Method("bicubic", "bicubic"), Method("bicubic+proj", "bicubic", lr_projection=True)]
    for folder, name in zip(folders, names):
        config = load_config(folder)
        family = getattr(config, "family", "sr3")
        found += [Method(f"{name}/{mode}", mode, folder, family) for mode in args.modes if mode != "bicubic"]
        found += [Method(f"{name}/detail={detail:g}", SROptions.mode.value, folder, family, detail=detail)
                  for detail in details_taken(config, name, args.details or [])]
        if args.self_ensemble and details_taken(config, name, [0.0]):
            found.append(Method(f"{name}/detail=0+ensemble", SROptions.mode.value, folder, family, detail=0.0,
                                self_ensemble=True))
    return found


def steps_of(method: Method, args: argparse.Namespace) -> list[Optional[int]]:
    """The step counts a method runs at: none to choose for the baselines and detail 0 (no reverse steps)."""
    if method.mode == "bicubic" or method.detail == 0:
        return [None]
    return args.steps_curve or [args.steps]


def lr_projected(output: np.ndarray, low: np.ndarray) -> np.ndarray:
    """output (C, H, W) with each LR block's mean residual against low (C, h, w) added to its pixels, a block being
    the output pixels whose centres fall in one LR pixel: the engine's own projection (owner, project_block_means),
    so the baseline is exactly what e2diffsr's decoder does to its output."""
    (h, w), (out_h, out_w) = low.shape[-2:], output.shape[-2:]
    projected = project_block_means(torch.from_numpy(output), torch.from_numpy(low), owner(h, out_h), owner(w, out_w))
    return projected.numpy()


def baseline(method: Method, low_8bit: np.ndarray, size: int) -> np.ndarray:
    """bicubic from the 8-bit input, LR-projected for bicubic+proj, then rounded and clipped to 8 bits as the
    models' outputs are."""
    output = np.stack([cv2.resize(b, (size, size), interpolation=cv2.INTER_CUBIC) for b in low_8bit])
    if method.lr_projection:
        output = lr_projected(output, low_8bit)
    return np.clip(np.rint(output), 0, 255)


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
    if method.detail is not None:
        cmd += ["--detail", str(method.detail)]
    if method.self_ensemble:
        cmd += ["--self-ensemble"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"quality: {method.label} at {scale}x failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sr_options(method: Method, scale: float, steps: Optional[int], args: argparse.Namespace) -> SROptions:
    extra = {} if steps is None else {"steps": steps}
    return SROptions(scale=scale, mode=FusionMode(method.mode), seed=args.seed, model_dir=method.model,
                     lr_consistency=not args.no_lr_consistency, device=args.device, detail=method.detail, **extra)


def measure(truth: np.ndarray, low: np.ndarray, output: np.ndarray, scale: float, borders: list[int], cover: np.ndarray) -> dict:
    return {
        "rmse": round(rmse(output, truth), 3),
        "psnr": round(psnr(output, truth), 3),
        "ssim": round(float(structural_similarity(output, truth, channel_axis=0, data_range=255)), 4),
        "seam": round(seams(output, borders), 3),
        "seam_truth": round(seams(truth, borders), 3),
        "seam_lattice": round(seams(output, lattice_lines(borders, output.shape[-1])), 3),
        "seam_lattice_truth": round(seams(truth, lattice_lines(borders, truth.shape[-1])), 3),
        "hf_ratio": round(high_frequency_ratio(output, truth, scale), 3),
        # texture where the fused grid's patches overlap against where one patch covers (1 = uniform)
        "hf_overlap_vs_single": round(high_frequency_ratio(output, truth, scale, cover >= 2)
                                      / high_frequency_ratio(output, truth, scale, cover == 1), 3),
        "lr_l1": round(lr_consistency(output, low), 3),
        "lr_grid": round(lr_grid(output, low.shape[-2:]), 4),
        "lr_grid_truth": round(lr_grid(truth, low.shape[-2:]), 4),
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
                        for steps in steps_of(method, args):
                            if method.mode == "bicubic":
                                start = time.perf_counter()
                                output = baseline(method, low_8bit, size)
                                wall = time.perf_counter() - start
                                run = {"wall_s": wall, "mp_per_s": size * size / 1e6 / max(wall, 1e-9),
                                       "peak_anon_mb": None, "steps": None, "detail": None}
                                # seams and cover on the first model's fused grid, as the fused rows
                                first = next((m for m in todo if m.mode != "bicubic"), Method("", "vcf"))
                                borders, cover = grid_of(dataclasses.replace(first, detail=None), "vcf", None)
                            else:
                                run = run_sr(lr_path, Path(tmp) / "sr.tif", method, scale, steps, args)
                                with rasterio.open(Path(tmp) / "sr.tif") as ds:
                                    output = ds.read().astype(np.float32)
                                borders = grid_of(method, method.mode, steps)[0]
                                cover = grid_of(method, "vcf", steps)[1]
                            row = {"scene": scene, "image": name, "scale": scale, "method": method.label,
                                   "model": None if method.mode == "bicubic" else (method.model or DEFAULT_MODEL_DIR).resolve().name,
                                   "family": method.family, "mode": method.mode,
                                   "variant": "lr_projection" if method.lr_projection else None,
                                   "detail": run["detail"],  # what the engine ran: --detail or the model's default
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


MEAN_MEASURES = {"psnr": 3, "ssim": 4, "hf_ratio": 3, "seam": 3, "seam_truth": 3, "seam_lattice": 3, "seam_lattice_truth": 3, "lr_l1": 3,
                 "lr_grid": 4, "lr_grid_truth": 4}  # key: decimals kept
BASELINE_MARGINS = {"bicubic": "psnr_vs_bicubic", "bicubic+proj": "psnr_vs_bicubic_proj"}  # method: summary key


def finite_mean(values: list[float], decimals: int) -> Optional[float]:
    """The rounded mean of the finite values, None if there are none: a crop inside one patch has no patch
    borders, so its seam scores are NaN, which would otherwise turn every mean and ratio built on them into NaN."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.mean(finite)), decimals) if finite else None


def counterpart(summary: list[dict], entry: dict, method: str) -> Optional[dict]:
    """The summary entry of `method` on entry's scene and scale (its first step count), None if not run."""
    return next((e for e in summary if e["method"] == method and e["scene"] == entry["scene"]
                 and e["scale"] == entry["scale"]), None)


def summarise(rows: list[dict], args: argparse.Namespace, truth_features: dict, sr_features: dict) -> list[dict]:
    """Per (scene, scale, method, steps): the mean measures, the seam ratio, the PSNR margins over both baselines,
    mean speed, its ratio to the reference method, peak RAM, FID/KID: everything a docs table shows."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["scene"], row["scale"], row["method"], row["steps"]), []).append(row)
    reference = args.speed_reference or next((r["method"] for r in rows if r["model"] is not None), None)
    summary = []
    for (scene, scale, method, steps), members in groups.items():
        rams = [m["peak_ram_mb"] for m in members if m["peak_ram_mb"] is not None]
        means = {k: finite_mean([m.get(k) for m in members], decimals) for k, decimals in MEAN_MEASURES.items()}
        seam, seam_truth = means["seam"], means["seam_truth"]
        entry = {"scene": scene, "scale": scale, "method": method, "steps": steps, "n": len(members), **means,
                 # the ratio of the means: one flat image's near-zero seam_truth cannot blow it up
                 "seam_ratio": round(seam / seam_truth, 3) if seam is not None and seam_truth else None,
                 # the borders against the other lines of their lattice: 1 = the fusion leaves no seam of its own
                 "seam_vs_lattice": round(seam / means["seam_lattice"], 3) if seam is not None and means["seam_lattice"] else None,
                 # the input's pixel grid the method draws beyond the truth's own (issue 38's lattice excess)
                 "lr_grid_excess": (round(means["lr_grid"] - means["lr_grid_truth"], 3)
                                    if means["lr_grid"] is not None and means["lr_grid_truth"] is not None else None),
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
        for method, key in BASELINE_MARGINS.items():
            base = counterpart(summary, entry, method)
            entry[key] = None if base is None else round(entry["psnr"] - base["psnr"], 3)
        ref = None if reference is None else counterpart(summary, entry, reference)
        entry["speed_vs_reference"] = None if ref is None else significant(entry["mp_per_s"] / ref["mp_per_s"])
    return summary


def cell(value: Optional[float], spec: str) -> Optional[str]:
    """value formatted for a table, None (an empty cell) where not measured."""
    return None if value is None else format(value, spec)


def summary_table(summary: list[dict]) -> str:
    """The summary as the markdown table the docs show (one row per scene, scale and method; the step count is
    added to the method where a method ran at several)."""
    runs = Counter((e["scene"], e["scale"], e["method"]) for e in summary)
    rows = [{
        "scene": e["scene"],
        "scale": f"{e['scale']:g}",
        "method": e["method"] if runs[(e["scene"], e["scale"], e["method"])] == 1 else f"{e['method']} @{e['steps']} steps",
        "PSNR": cell(e["psnr"], ".2f"),
        "dB vs bicubic": cell(e["psnr_vs_bicubic"], "+.2f"),
        "dB vs bicubic+proj": cell(e["psnr_vs_bicubic_proj"], "+.2f"),
        "SSIM": cell(e["ssim"], ".4f"),
        "hf": cell(e["hf_ratio"], ".3f"),
        "KID x1000": cell(None if e.get("kid") is None else 1000 * e["kid"], ".2f"),
        "seam ratio": cell(e["seam_ratio"], ".3f"),
        "seam vs lattice": cell(e["seam_vs_lattice"], ".3f"),
        "lr_l1": cell(e["lr_l1"], ".3f"),
        "LR grid excess": cell(e.get("lr_grid_excess"), "+.3f"),
        "MP/s": cell(e["mp_per_s"], ".3g"),
    } for e in summary]
    return markdown(rows, list(rows[0])) if rows else "no rows"


def detail_value(text: str) -> float:
    """A --details value: a number from 0 to 1 (what the engine's --detail takes)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a detail is a number from 0 (faithful) to 1 (detailed), got {text}")
    return value


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
    p.add_argument("--details", type=detail_value, nargs="+", metavar="D",
                   help="also run each e2diffsr model at each of these --detail values (0: regression branch, 1: full model)")
    p.add_argument("--self-ensemble", action="store_true",
                   help="also run each e2diffsr model at detail 0 with --self-ensemble (the mean of 8 decodes)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-lr-consistency", action="store_true")
    p.add_argument("--perceptual", action="store_true",
                   help="opensr-test figures per row and FID/KID per scene, scale and method (make bench-setup)")
    p.add_argument("--fid-crop", type=int, default=64, help="side of the tiles cut from outputs and truths for FID/KID")
    p.add_argument("--speed-reference", help="method whose megapixels per second the others are divided by")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--summary-out", type=Path, help="per scene, scale and method (default: OUT_summary.json)")
    p.add_argument("--markdown", type=Path, help="also write the summary here as a markdown table")
    args = p.parse_args()
    rows, summary = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    summary_out = args.summary_out or args.out.with_name(args.out.stem + "_summary.json")
    summary_out.write_text(json.dumps(summary, indent=1) + "\n")
    table = summary_table(summary)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
