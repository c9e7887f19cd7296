#!/bin/sh
# GUI smoke test: the real QGIS desktop under Xvfb with the InfScene plugin enabled in a fresh
# profile; the panel opens, a run on a small extent completes, and a screenshot is saved.
# Usage: scripts/gui_smoke.sh [OUTPUT_DIR]  (default build/gui-smoke); exits non-zero on failure.
# Needs: qgis, xvfb-run, xauth, ImageMagick's /usr/bin/import, and the engine in .venv (make setup).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/build/gui-smoke}" && cd "${1:-$root/build/gui-smoke}" && pwd)
rm -rf "$out/profiles" "$out/status.json" "$out/shot.png" "$out"/smoke_sr*.tif
"$root/scripts/qgis_profile.sh" "$out/profiles"

model="${INFSCENE_SMOKE_MODEL:-$root/resources/models/sr3}"
if [ ! -f "$model/config.json" ]; then
  # No trained model in this checkout: a small random-weight one exercises the same code path.
  model="$out/tiny-model"
  "$root/.venv/bin/python" -c "
import torch, sys
from infscene.models.folder import save_model
from infscene.models.sr3.network import ModelConfig, SR3UNet
torch.manual_seed(0)
save_model(SR3UNet(ModelConfig(name='smoke-untrained', base_channels=8, channel_mults=[1, 2], patch_size=32, norm_groups=4)), sys.argv[1])
" "$model"
fi

export INFSCENE_SMOKE_DIR="$out" INFSCENE_SMOKE_MODEL="$model"
export INFSCENE_SMOKE_INPUT="${INFSCENE_SMOKE_INPUT:-$root/tests/fixtures/naip_nd_5m_64.tif}"
export GDAL_PAM_ENABLED=NO

xvfb-run -a -s "-screen 0 1600x1000x24" sh -c '
  qgis --nologo --noversioncheck --profiles-path "$INFSCENE_SMOKE_DIR/profiles" \
       --code "$0" >"$INFSCENE_SMOKE_DIR/qgis.log" 2>&1 &
  qgis_pid=$!
  waited=0
  while [ ! -f "$INFSCENE_SMOKE_DIR/status.json" ] && [ $waited -lt 300 ]; do sleep 1; waited=$((waited + 1)); done
  /usr/bin/import -window root "$INFSCENE_SMOKE_DIR/shot.png"
  kill $qgis_pid
  wait $qgis_pid || true
' "$root/scripts/gui_smoke_qgis.py"

cat "$out/status.json" 2>/dev/null || { echo "gui smoke: QGIS never reported (see $out/qgis.log)"; exit 1; }
echo
grep -q '"status": "done"' "$out/status.json" && [ -f "$out/smoke_sr.tif" ] && [ -f "$out/shot.png" ] \
  && echo "gui smoke: OK, screenshot $out/shot.png" \
  || { echo "gui smoke: FAILED (see $out/qgis.log)"; exit 1; }
