"""Print a benchmark's JSON rows (from speed_memory.py, quality.py or iceplant_agreement.py) as a Markdown table.

    .venv/bin/python bench/tables.py docs/bench/quality_cpu.json [--columns scene scale mode rmse ...]
    .venv/bin/python bench/tables.py docs/bench/quality_srdev_cpu.json --mean-by scale mode --columns scale mode n rmse psnr

--mean-by KEY... gives one row per combination of those columns (e.g. per scale and mode, over all
images), the other numeric columns averaged over the rows that have a value (None: not measured, such as
opensr-test's figures at a non-integer scale or bicubic's peak RAM) and the number of rows averaged as `n`.

    .venv/bin/python bench/tables.py out/families.json --mean-by scale method --columns scale method n psnr osr_improvement osr_hallucination mp_per_s
    .venv/bin/python bench/tables.py out/families_summary.json   # FID/KID, speed and its ratio per scene, scale and method
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def mean_by(rows: list[dict], keys: list[str]) -> list[dict]:
    """One row per combination of `keys`, in first-seen order, with the other numeric columns averaged."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    means = []
    for label, members in groups.items():
        columns = dict.fromkeys(k for m in members for k in m if k not in keys)
        averaged = {}
        for k in columns:
            values = [m.get(k) for m in members]
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numbers and all(v is None or v in numbers for v in values):  # numeric, None where not measured
                averaged[k] = round(float(np.mean(numbers)), 3)
            elif numbers == [] and all(v is None for v in values):
                averaged[k] = None
        means.append({**dict(zip(keys, label)), **averaged, "n": len(members)})
    return means


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, nargs="+",
                   help="result files; several are read as one table (a row of the same scene, image, scale and method once)")
    p.add_argument("--columns", nargs="+", help="columns to show, in order (default: all keys of the first row)")
    p.add_argument("--mean-by", nargs="+", metavar="KEY", help="one row per combination of these columns, others averaged")
    args = p.parse_args()
    rows: list[dict] = []
    seen: set[tuple] = set()
    for path in args.results:
        for row in json.loads(path.read_text()):
            key = tuple(row.get(k) for k in ("scene", "image", "scale", "method")) if "method" in row else (len(rows),)
            if key not in seen:
                seen.add(key)
                rows.append(row)
    if args.mean_by:
        rows = mean_by(rows, args.mean_by)
    print(markdown(rows, args.columns or list(rows[0])))


if __name__ == "__main__":
    main()
