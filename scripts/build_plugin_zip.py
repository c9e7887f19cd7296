#!/usr/bin/env python3
"""Build the installable plugin zip: infscene_qgis/ plus the LICENSE, without caches, under 25 MB.

The engine-plugin contract (plugin_contract.CONTRACT) is packed from the engine's own files, so a zip always
ships the engine's contract even where the checkout's copies were not regenerated. Standard library only, so
`make zip` works with any Python 3 and without the `zip` tool.
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from plugin_contract import CONTRACT, ENGINE_DIR

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "infscene_qgis"
MAX_BYTES = 25 * 1024 * 1024  # the QGIS plugin repository's upload limit
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def plugin_files(package_dir: Path) -> list[Path]:
    """Every file of the package that belongs in a release, sorted for reproducible zips."""
    return sorted(
        path for path in package_dir.rglob("*")
        if path.is_file()
        and not EXCLUDED_DIRS.intersection(path.relative_to(package_dir).parts)
        and path.suffix not in EXCLUDED_SUFFIXES
    )


def build(output: Path) -> Path:
    package_dir = ROOT / PACKAGE
    for required in (package_dir / "metadata.txt", package_dir / "__init__.py", ROOT / "LICENSE"):
        if not required.is_file():
            sys.exit(f"missing {required}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files(package_dir):
            name = path.relative_to(package_dir).as_posix()
            if name not in CONTRACT:
                archive.write(path, f"{PACKAGE}/{name}")
        for name in CONTRACT:
            archive.write(ENGINE_DIR / name, f"{PACKAGE}/{name}")
        archive.write(ROOT / "LICENSE", f"{PACKAGE}/LICENSE")
    size = output.stat().st_size
    if size > MAX_BYTES:
        output.unlink()
        sys.exit(f"{output} would be {size / 1e6:.1f} MB, over the 25 MB limit of the plugin repository")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", nargs="?", default=str(ROOT / "dist" / f"{PACKAGE}.zip"))
    zip_path = build(Path(parser.parse_args().output))
    print(f"{zip_path} ({zip_path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
