#!/usr/bin/env python3
"""Copy the engine-plugin contract into the plugin: the engine's `protocol.py` (the events) and `sr_options.py`
(the option table), which the plugin ships byte for byte because it never imports the engine.

The engine's files are the source; the plugin's are generated from them here, run by `make setup`, by
`scripts/qgis_profile.sh` (QGIS run from the checkout) and, for the zip, by `scripts/build_plugin_zip.py`, which
packs the engine's files themselves. `tests/plugin/test_protocol.py` fails if the committed copies differ.
Standard library only.

    python3 scripts/plugin_contract.py            # copy where they differ, naming each
    python3 scripts/plugin_contract.py --check    # exit 1 if they differ, copy nothing
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ("protocol.py", "sr_options.py")
ENGINE_DIR = ROOT / "engine" / "infscene"
PLUGIN_DIR = ROOT / "infscene_qgis"


def stale(engine_dir: Path = ENGINE_DIR, plugin_dir: Path = PLUGIN_DIR) -> list[str]:
    """The contract files whose plugin copy is missing or differs from the engine's."""
    return [name for name in CONTRACT
            if not (plugin_dir / name).is_file() or (plugin_dir / name).read_bytes() != (engine_dir / name).read_bytes()]


def sync(engine_dir: Path = ENGINE_DIR, plugin_dir: Path = PLUGIN_DIR) -> list[str]:
    """Copy the stale files (each written to a temporary file and renamed, so QGIS never reads half of one)."""
    copied = stale(engine_dir, plugin_dir)
    for name in copied:
        handle, tmp = tempfile.mkstemp(dir=plugin_dir, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write((engine_dir / name).read_bytes())
        os.replace(tmp, plugin_dir / name)
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the copies differ (exit 1 if they do)")
    args = parser.parse_args()
    if args.check:
        differing = stale()
        for name in differing:
            print(f"infscene_qgis/{name} differs from engine/infscene/{name}", file=sys.stderr)
        return 1 if differing else 0
    for name in sync():
        print(f"plugin contract: infscene_qgis/{name} <- engine/infscene/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
