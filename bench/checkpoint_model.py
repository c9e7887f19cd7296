"""A model folder from one training checkpoint, to benchmark a run's weights before the run ends.

The trainer keeps its last checkpoints (weights, EMA, optimizer, state.json) and OUT/best, chosen by the
validation loss; the benchmark that decides what ships is bench/quality.py, which reads model folders.

    .venv/bin/python bench/checkpoint_model.py runs/s3-A/checkpoints/step-0005000 out/s3-A-5000 [--raw]
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from infscene.modelformat.files import CONFIG_FILE, WEIGHTS_FILE
from infscene.models.registry import check_model
from infscene.training.checkpoints import verified_state


def export(checkpoint: Path, out: Path, raw: bool) -> Path:
    """Write out/ (config.json + model.safetensors) from the checkpoint's EMA (or raw) weights, once its checksums are
    verified; checked as the engine checks."""
    state = verified_state(checkpoint)
    config = {**state["model_config"], "trained": True,
              "notes": f"the {'raw' if raw else 'EMA'} weights of {checkpoint.parent.parent.name} step {state['step']} (a benchmark export)"}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint / ("model.safetensors" if raw else "ema.safetensors"), out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    check_model(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a step-NNNNNNN folder of a training run")
    p.add_argument("out", type=Path, help="the model folder to write")
    p.add_argument("--raw", action="store_true", help="the raw weights instead of their EMA")
    args = p.parse_args()
    print(export(args.checkpoint, args.out, args.raw))


if __name__ == "__main__":
    main()
