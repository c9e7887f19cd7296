"""Bicubic's L1 on the e2diffsr trainer's validation pairs, the baseline its validation losses compare with.

    .venv/bin/python bench/e2diffsr_val_baseline.py --val ../shared/data/sr_dev

The pairs are the trainer's own (`e2diffsr.training.fixed_pairs`: centre crops at 2, 3.7, 5 and 8x, 24 LR
pixels, no blur or noise), and the L1 is pixel-weighted in model units as `_PairData.mean_l1` computes it.
"""
from __future__ import annotations

import argparse

from infscene.models.e2diffsr.network import E2DiffSRConfig
from infscene.models.e2diffsr.training import VAL_LR_SIDE, VAL_SCALES, crop_sides, fixed_pairs
from infscene.training.data import load_hr_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--val", required=True, help="the folder (or glob) given to infscene train --val")
    args = p.parse_args()
    config = E2DiffSRConfig()
    images = load_hr_images(args.val, config, crop_sides(VAL_LR_SIDE, config.scale_min)[0])
    pairs = fixed_pairs(images, config, VAL_SCALES)
    total = sum(float((b.up - b.hr).abs().sum()) for b in pairs)
    print(f"bicubic validation L1 (model units): {total / sum(b.hr.numel() for b in pairs):.4f}")


if __name__ == "__main__":
    main()
