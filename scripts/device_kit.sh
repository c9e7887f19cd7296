#!/bin/sh
# Prepares, on this machine, what GPU training calls carry to the device machine (docs/training.md, "Training on
# the GPU machine"): rasterio's wheels built for that machine's Python 3.12 (it has no rasterio) and the training
# and validation rasters, re-encoded losslessly as WebP GeoTIFFs (same pixels, masks and georeference; 51 -> 34 MB
# for sr_train). A call carries the working tree (about 18 MB) plus what it names, 64 MiB in all, so the kit is cut
# into parts of at most PART_MB (default 40): .device-kit/part1, part2, ... Each part holds MANIFEST, the list of
# every file of the kit with its size, so the device side knows when it has them all. .device-kit is ignored.
# Usage: scripts/device_kit.sh [DATA_DIR]  (default ../shared/data; PART_MB=40, PYTHON=.venv/bin/python)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$root/../shared/data}" && pwd)
python=${PYTHON:-$root/.venv/bin/python}
kit="$root/.device-kit"
rm -rf "$kit" && mkdir -p "$kit/all/wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$kit/all/wheels" rasterio==1.4.3 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2
"$python" - "$data" "$kit" "${PART_MB:-40}" <<'EOF'
import shutil, sys
from pathlib import Path

from rasterio.shutil import copy as copy_raster

data, kit, part_mb = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
everything = kit / "all"
for source in sorted(data.glob("sr_train/**/*.tif")) + sorted(data.glob("sr_dev/**/*.tif")):
    target = everything / "data" / source.relative_to(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_raster(source, target, driver="GTiff", tiled=True, blockxsize=256, blockysize=256,
                compress="webp", webp_lossless=True)
files = sorted((p for p in everything.rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
parts: list[list[Path]] = []
for path in files:  # largest first, each into the first part with room
    size = path.stat().st_size
    home = next((part for part in parts if sum(p.stat().st_size for p in part) + size <= part_mb * 1e6), None)
    if home is None:
        parts.append(home := [])
    home.append(path)
manifest = "".join(f"{p.relative_to(everything)}\t{p.stat().st_size}\n" for p in sorted(files))
for number, part in enumerate(parts, start=1):
    folder = kit / f"part{number}"
    for path in part:
        (folder / path.relative_to(everything)).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, folder / path.relative_to(everything))
    (folder / "MANIFEST").write_text(manifest)
shutil.rmtree(everything)
print(f"{len(files)} files in {len(parts)} parts of at most {part_mb:g} MB")
EOF
du -sh "$kit"/part*
