"""Print a benchmark's JSON rows (from speed_memory.py, quality.py or iceplant_agreement.py) as a Markdown table.

    .venv/bin/python bench/tables.py docs/bench/quality_cpu.json [--columns scene scale mode rmse ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    p.add_argument("--columns", nargs="+", help="columns to show, in order (default: all keys of the first row)")
    args = p.parse_args()
    rows = json.loads(args.results.read_text())
    print(markdown(rows, args.columns or list(rows[0])))


if __name__ == "__main__":
    main()
