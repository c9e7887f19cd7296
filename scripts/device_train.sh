#!/bin/sh
# One training call on the GPU machine, run there from the repository root by the device tool:
#   sh scripts/device_train.sh MINUTES [more `infscene train` options]
# The kit (scripts/device_kit.sh) comes in parts, one carried per call (`carry: [".device-kit/partN"]`); each call
# adds what it carries to $INFSCENE_KIT, which stays on the machine between back-to-back calls. Until every file of
# the kit's MANIFEST is there, a call only stores its part and says which are missing. Then it trains (or resumes)
# $INFSCENE_RUN, which also stays on the machine, so each call resumes the last one; a fresh run starts from the
# weights in $INFSCENE_INIT (default: the shipped SR3; resources/models/e2diffsr, or a stage-1 run, for e2diffsr).
# After MINUTES of training it copies to $OUT the model (weights + config), the training log, the newest preview
# and best/ (the weights with the lowest validation loss so far: what ships).
set -eu
minutes=$1
shift
python=${PYTHON:-python3}
kit=${INFSCENE_KIT:-/tmp/infscene-kit}
init=${INFSCENE_INIT:-resources/models/sr3}
run=${INFSCENE_RUN:-out/$(basename "$init")-gpu}
mkdir -p "$kit"
for part in .device-kit/part*; do
  [ -d "$part" ] && cp -r "$part/." "$kit/"
done
missing=$(
  if [ -f "$kit/MANIFEST" ]; then
    while IFS="$(printf '\t')" read -r file size; do
      [ -f "$kit/$file" ] && [ "$(wc -c <"$kit/$file")" -eq "$size" ] || echo "$file"
    done <"$kit/MANIFEST"
  else
    echo MANIFEST
  fi
)
if [ -n "$missing" ]; then
  echo "kit incomplete: $(echo "$missing" | wc -l) files missing (the first: $(echo "$missing" | head -n 1)); carry the next .device-kit/partN"
  exit 0
fi
export PYTHONPATH="$PWD/engine:/tmp/site:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
if ! "$python" -c "import rasterio" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$kit"/wheels/*.whl
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || true
"$python" -m infscene train --hr "$kit/data/sr_train" --val "$kit/data/sr_dev" --out "$run" \
  --init "$init" --resume --time-limit "$minutes" "$@"
cp "$run/model.safetensors" "$run/config.json" "$run/train_log.jsonl" "$OUT/"
cp "$(ls "$run"/samples/*.png | tail -n 1)" "$OUT/"
if [ -d "$run/best" ]; then
  mkdir -p "$OUT/best" && cp "$run/best/model.safetensors" "$run/best/config.json" "$run/best/best.json" "$OUT/best/"
fi
