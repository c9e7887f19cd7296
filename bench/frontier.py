"""The perception-distortion plane of the detail recipes: PSNR over bicubic against high-frequency energy, per scene.

Every recipe of docs/benchmarks.md was measured by bench/quality.py into a summary JSON; this draws the chosen
models of those files on one plane per scene (one line per model through its details, detail 0 at the left), with
bicubic + the exact LR projection as a dashed line and the issue's target (hf >= 0.6 of the truth's at >= bicubic +
0.3 dB) as a shaded box, so that what the tables say one row at a time can be read at a glance: whether a recipe
moved the frontier or only slid along it. Each model is given as LABEL=SUMMARY:MODEL (the part of a method's name
before `/detail=`); the scale is --scale.

    .venv/bin/python bench/frontier.py --out docs/images/frontier_4x.png \\
        A=docs/bench/detail_recipes_AC_cpu_summary.json:s3-A R2=docs/bench/detail_R2_4x_cpu_summary.json:s3-R2 ...
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

SCENES = ("sr_dev", "naip_ND_5m")
TARGET_HF, TARGET_DB = 0.6, 0.3


@dataclass(frozen=True)
class Curve:
    """One model's points on one scene: (detail, hf, dB over bicubic), by detail."""

    label: str
    scene: str
    points: list[tuple[float, float, float]]


def parse_model(text: str) -> tuple[str, Path, str]:
    """LABEL=SUMMARY:MODEL -> (label, summary path, model)."""
    label, sep, rest = text.partition("=")
    path, colon, model = rest.rpartition(":")
    if not (sep and colon and label and model):
        raise argparse.ArgumentTypeError(f"expected LABEL=SUMMARY.json:MODEL, got {text!r}")
    return label, Path(path), model


def curves(models: list[tuple[str, Path, str]], scale: float) -> tuple[list[Curve], dict[str, float]]:
    """The models' curves per scene, and bicubic + projection's margin over bicubic per scene (from the first file
    that has it: the same crops in every file of the section)."""
    found, projection = [], {}
    for label, path, model in models:
        summary = json.loads(path.read_text())
        for scene in SCENES:
            entries = [e for e in summary if e["scene"] == scene and e["scale"] == scale]
            for e in entries:
                if e["method"] == "bicubic+proj" and e.get("psnr_vs_bicubic") is not None:
                    projection.setdefault(scene, e["psnr_vs_bicubic"])
            points = sorted((float(e["method"].split("/detail=")[1]), e["hf_ratio"], e["psnr_vs_bicubic"])
                            for e in entries if e["method"].startswith(f"{model}/detail="))
            if not points:
                raise SystemExit(f"{path}: no {model}/detail=... rows for {scene} at {scale:g}x")
            found.append(Curve(label, scene, points))
    return found, projection


def draw(found: list[Curve], projection: dict[str, float], scale: float, out: Path) -> None:
    figure, axes = plt.subplots(1, len(SCENES), figsize=(6.2 * len(SCENES), 5.0))
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(dict.fromkeys(c.label for c in found))}
    for axis, scene in zip(axes, SCENES):
        axis.fill_between([TARGET_HF, 1.0], TARGET_DB, TARGET_DB + 2.0, color="tab:green", alpha=0.12, label="target")
        axis.axhline(0.0, color="black", lw=0.8, label="bicubic")
        if scene in projection:
            axis.axhline(projection[scene], color="black", lw=0.8, ls="--", label="bicubic + LR projection")
        for curve in (c for c in found if c.scene == scene):
            _, hf, db = zip(*curve.points)
            axis.plot(hf, db, "-o", ms=4, color=colours[curve.label], label=curve.label)
            for d, x, y in curve.points:
                axis.annotate(f"{d:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=colours[curve.label])
        axis.set(title=f"{scene}, {scale:g}x", xlabel="high-frequency energy / truth's", ylabel="PSNR - bicubic (dB)",
                 xlim=(0.0, 0.8))
        lowest = min(db for c in found if c.scene == scene for _, _, db in c.points)
        axis.set_ylim(min(-0.2, lowest - 0.15), 1.2)
        axis.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=parse_model, metavar="LABEL=SUMMARY:MODEL")
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args()
    found, projection = curves(args.models, args.scale)
    draw(found, projection, args.scale, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
