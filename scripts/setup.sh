#!/usr/bin/env bash
# Set up everything InfScene needs on a fresh Debian 12 machine (about 2 minutes):
# QGIS 3.22 from Debian (for the plugin and its tests), then a venv on Debian's Python that sees
# PyQGIS and holds the engine (torch CPU build, rasterio, ...). Idempotent: reruns are quick.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_PACKAGES="python3-qgis qgis-providers qgis python3-venv xvfb xauth imagemagick gdal-bin"

missing=""
for pkg in $APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

# PyQGIS is built for Debian's /usr/bin/python3, not for whatever python3 is first on PATH.
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e engine
.venv/bin/python scripts/plugin_contract.py  # the plugin's copy of the engine's contract (protocol, option table)
echo "setup: ready (.venv/bin/infscene)"
