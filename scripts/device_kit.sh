#!/bin/sh
# Prepares, on this machine, what a GPU training call carries to the device machine (docs/training.md,
# "Training on the GPU machine"): .device-kit/wheels (rasterio and the parts of it that machine lacks, built
# for its Python 3.12) and .device-kit/data (copies of sr_train and sr_dev). About 40 MB; .device-kit is ignored.
# Usage: scripts/device_kit.sh [DATA_DIR]  (default ../shared/data)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$root/../shared/data}" && pwd)
kit="$root/.device-kit"
rm -rf "$kit" && mkdir -p "$kit/wheels" "$kit/data"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$kit/wheels" rasterio==1.4.3 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2
cp -r "$data/sr_train" "$data/sr_dev" "$kit/data/"
du -sh "$kit"
