#!/bin/sh
# Prepare a QGIS profiles folder with the InfScene plugin enabled (symlinked from this checkout,
# so edits take effect on restart). Usage: scripts/qgis_profile.sh DIR
# Used by `make qgis` and scripts/gui_smoke.sh; then run `qgis --profiles-path DIR`.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 PROFILES_DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
profile="$1/profiles/default"
mkdir -p "$profile/python/plugins" "$profile/QGIS"
python3 "$root/scripts/plugin_contract.py"  # the plugin's copy of the engine's contract, regenerated
ln -sfn "$root/infscene_qgis" "$profile/python/plugins/infscene_qgis"
ini="$profile/QGIS/QGIS3.ini"
if [ -f "$ini" ] && grep -q '^infscene_qgis=true' "$ini"; then
  exit 0
fi
# A fresh profile: enable the plugin and skip the first-run dialogs.
cat >> "$ini" <<INI
[PythonPlugins]
infscene_qgis=true

[qgis]
checkVersion=false
showTips=false
INI
