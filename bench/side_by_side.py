"""Side-by-side pictures of held-out crops: bicubic | the model at several details | truth, one row per crop.

What the tables of docs/benchmarks.md cannot show: where the texture goes. Each truth crop is area-downsampled
by --scale (as bench/quality.py does), super-resolved by the engine in-process at each --details value (the
model's default where a value is given as `default`), and laid out with its bicubic enlargement and the truth,
each panel enlarged with nearest-neighbour to about --panel pixels a side so the pixels stay visible. The crops: the naip_ND_5m centre crop
(fields, farmsteads) and the Colorado HRO tile of sr_dev (a cul-de-sac: roofs, cars, asphalt), neither used in
training.

    .venv/bin/python bench/side_by_side.py --details 0 default 1 --out docs/images/side_by_side_4x.png
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import rasterio

from infscene.modelformat.files import DEFAULT_MODEL_DIR
from infscene.models.registry import load_config
from infscene.plan import SROptions
from infscene.run import super_resolve

from quality import SHARED, Method, baseline, degrade, detail_value, write_low_res

CROPS = {  # label: (truth raster, crop side in truth pixels)
    "NAIP fields (naip_ND_5m)": (SHARED / "scenes" / "naip_ND_5m" / "m_4709963_se_14_1_20100629.tif", 160),
    "urban (Colorado HRO, sr_dev)": (SHARED / "sr_dev" / "colorado_hro_0.15m" / "201404_13SED190110_201404_0x1500m_CL_1.tif", 112),
}
LABEL_HEIGHT = 22


def centre_crop(path: Path, side: int) -> np.ndarray:
    """(3, side, side) of the raster's RGB bands around its centre."""
    with rasterio.open(path) as ds:
        row, col = (ds.height - side) // 2, (ds.width - side) // 2
        return ds.read([1, 2, 3], window=((row, row + side), (col, col + side))).astype(np.float32)


def super_resolved(lr_path: Path, scale: float, model: Path, detail: Optional[float], seed: int, tmp: Path) -> np.ndarray:
    out = tmp / "sr.tif"
    super_resolve(lr_path, out, SROptions(scale=scale, seed=seed, model_dir=model, detail=detail))
    with rasterio.open(out) as ds:
        image = ds.read([1, 2, 3]).astype(np.float32)
    out.unlink()
    return image


def panel(image: np.ndarray, label: str, zoom: int) -> np.ndarray:
    """(3, H, W) 0-255 -> an 8-bit BGR tile enlarged by zoom, its label on a strip above."""
    bgr = np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(1, 2, 0)[:, :, ::-1]
    big = cv2.resize(bgr, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    strip = np.full((LABEL_HEIGHT, big.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, label, (4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, big])


def row_of(truth_path: Path, side: int, args: argparse.Namespace, tmp: Path) -> np.ndarray:
    truth, low = degrade(centre_crop(truth_path, side), args.scale)
    size = truth.shape[-1]
    zoom = max(1, round(args.panel / size))
    lr_path = tmp / "lr.tif"
    write_low_res(low, args.scale, lr_path)
    bicubic = baseline(Method("bicubic", "bicubic"), np.clip(np.rint(low), 0, 255), size)  # quality.py's, from the 8-bit input
    panels = [panel(bicubic, f"bicubic {args.scale:g}x", zoom)]
    default = load_config(args.model).default_detail
    for detail in args.details:
        image = super_resolved(lr_path, args.scale, args.model, detail, args.seed, tmp)[:, :size, :size]
        panels.append(panel(image, f"detail {default:g} (default)" if detail is None else f"detail {detail:g}", zoom))
    panels.append(panel(truth, "truth", zoom))
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    return np.hstack([part for p in panels for part in (p, gap)][:-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--details", nargs="+", default=["0", "default", "1"],
                   help="--detail values, `default` for the model's own (default: 0 default 1)")
    p.add_argument("--panel", type=int, default=320, help="about this many screen pixels a side per panel (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.details = [None if d == "default" else detail_value(d) for d in args.details]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row_of(path, side, args, Path(tmp)) for path, side in CROPS.values()]
    width = max(r.shape[1] for r in rows)
    rows = [np.hstack([r, np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)]) for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), np.vstack(rows)):
        raise SystemExit(f"side_by_side: could not write {args.out}")
    print(f"wrote {args.out}: rows {', '.join(CROPS)}")


if __name__ == "__main__":
    main()
