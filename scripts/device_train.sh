#!/bin/sh
# One training call on the GPU machine, run there from the repository root by the device tool:
#   sh scripts/device_train.sh MINUTES [more `infscene train` options]
# It carries .device-kit (made here by scripts/device_kit.sh). The run lives in out/sr3-gpu, which stays on the
# machine between back-to-back calls, so each call resumes the last one; a fresh machine starts from the weights
# in $INFSCENE_INIT (default: the shipped model). After MINUTES of training it copies to $OUT what comes back:
# the model (weights + config), the training log and the newest preview image.
set -eu
minutes=$1
shift
python=${PYTHON:-python3}
if ! "$python" -c "import rasterio" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device-kit/wheels/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/engine:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
run=${INFSCENE_RUN:-out/sr3-gpu}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || true
"$python" -m infscene train --hr .device-kit/data/sr_train --val .device-kit/data/sr_dev --out "$run" \
  --init "${INFSCENE_INIT:-resources/models/sr3}" --resume --time-limit "$minutes" "$@"
cp "$run/model.safetensors" "$run/config.json" "$run/train_log.jsonl" "$OUT/"
cp "$(ls "$run"/samples/*.png | tail -n 1)" "$OUT/"
