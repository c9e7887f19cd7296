"""Does `--samples`' spread mark invented detail? The spread of several seeds against the error they make.

A sampler that draws from the truth's distribution given the input has, at every pixel, a spread (std over
seeds) that says how far its output may be from the truth: for two independent draws x, y of that
distribution E(x - y)^2 = 2 var, so sqrt(2 * mean spread^2) equals the RMSE of one sample against the truth
(`spread_to_error` = 1). A deterministic model has spread 0 (ratio 0) whatever its error. `block_corr` is the
correlation over 8 x 8 output blocks of the mean spread with the mean |error| of the first sample: whether the
spread is high where the output is wrong, which is what an analyst reading the spread layer relies on.

Each truth crop (bench/quality.py's scenes) is area-downsampled by --scale, super-resolved by the engine with
`--samples N` (its spread layer: the std over seeds, averaged over the bands, in input units), and compared.

    .venv/bin/python bench/sample_spread.py --model resources/models/e2diffsr --details 0.45 1 --samples 4 \
        --out docs/bench/sample_spread_cpu.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import rasterio

from infscene.modelformat.files import DEFAULT_MODEL_DIR
from infscene.plan import SROptions
from infscene.run import super_resolve

from quality import degrade, truth_crops, write_low_res
from tables import markdown, mean_by

BLOCK = 8  # output pixels a side of the blocks over which spread and error are correlated


def block_means(image: np.ndarray) -> np.ndarray:
    """(H, W) -> the means of its whole BLOCK x BLOCK blocks, flattened."""
    h, w = (s // BLOCK * BLOCK for s in image.shape)
    return image[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3)).ravel()


def spread_figures(truth: np.ndarray, first: np.ndarray, spread: np.ndarray) -> dict:
    """truth, first: (3, H, W) 0-255; spread: (H, W) std over the samples in the same units."""
    error = first - truth
    rmse = float(np.sqrt(np.mean(error**2)))
    spread_rms = float(np.sqrt(np.mean(spread**2)))
    blocks_spread, blocks_error = block_means(spread), block_means(np.abs(error).mean(axis=0))
    corr = float(np.corrcoef(blocks_spread, blocks_error)[0, 1]) if blocks_spread.std() > 0 else 0.0
    return {"spread_dn": round(float(spread.mean()), 3), "rmse_dn": round(rmse, 3),
            "spread_to_error": round(np.sqrt(2.0) * spread_rms / rmse, 3), "block_corr": round(corr, 3)}


def sampled_figures(lr_path: Path, truth: np.ndarray, model: Path, detail: Optional[float], args: argparse.Namespace,
                    tmp: Path) -> dict:
    """Super-resolve lr_path with --samples and score its first sample and spread layer against the truth."""
    out, spread_path = tmp / "out.tif", tmp / "spread.tif"
    super_resolve(lr_path, out, SROptions(scale=args.scale, seed=args.seed, model_dir=model, detail=detail,
                                          samples=args.samples, spread_path=spread_path))
    with rasterio.open(out) as ds, rasterio.open(spread_path) as sp:
        first, spread = ds.read([1, 2, 3]).astype(np.float64), sp.read(1).astype(np.float64)
    out.unlink()
    spread_path.unlink()
    return spread_figures(truth.astype(np.float64), first, spread)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", nargs="+", default=["sr_dev", "naip_ND_5m"])
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--max-images", type=int)
    p.add_argument("--model", type=Path, nargs="+", default=[DEFAULT_MODEL_DIR])
    p.add_argument("--details", type=float, nargs="+", default=[None])
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scene in args.scenes:
            for name, full_truth in truth_crops(scene, args.crop, args.max_images):
                truth, low = degrade(full_truth, args.scale)
                lr_path = Path(tmp) / f"{name}_lr.tif"
                write_low_res(low, args.scale, lr_path)
                for model in args.model:
                    for detail in args.details:
                        row = {"scene": scene, "image": name, "model": str(model), "detail": detail,
                               **sampled_figures(lr_path, truth, model, detail, args, Path(tmp))}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    summary = mean_by(rows, ["scene", "model", "detail"])
    args.out.with_name(args.out.stem + "_summary.json").write_text(json.dumps(summary, indent=1))
    print(markdown(summary, ["scene", "model", "detail", "n", "spread_dn", "rmse_dn", "spread_to_error", "block_corr"]))


if __name__ == "__main__":
    main()
