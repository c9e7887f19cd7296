"""A model folder's files by name, the bundled default folder, and its config read as plain JSON: no torch, so the
plugin's quick plan (quick_plan.py) finds and reads a model with the engine's own names and limits."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InfSceneError
from ..protocol import format_bytes

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 1024**2
FAMILY_WHEN_ABSENT = "sr3"  # a config.json without `family`: written before there was a second family, an SR3 model
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "resources" / "models" / "e2diffsr"  # the bundled default


def read_config_json(path: Path) -> dict[str, Any]:
    """The config file as a JSON object, refusing a huge or deeply nested one with one line."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InfSceneError(f"invalid model config {path}: larger than {format_bytes(MAX_CONFIG_BYTES)}")
    try:
        raw = json.loads(path.read_text())
    except RecursionError as exc:
        raise InfSceneError(f"invalid model config {path}: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InfSceneError(f"invalid model config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise InfSceneError(f"invalid model config {path}: not a JSON object")
    return raw


def read_raw_config(folder: Path) -> tuple[dict[str, Any], Path]:
    """The JSON of a model folder's config, and its path; InfSceneError when the folder has none."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise InfSceneError(f"not a model folder (no {CONFIG_FILE}): {folder}")
    return read_config_json(path), path
