"""The model families the engine runs, listed once, and the model folders resolved through them.

This is the one module that names the families: everything above it (the planner, the executors, the train
command) asks it for a folder's or a config's family and then works through the ModelFamily class alone.
Adding a family is a folder beside sr3/ and e2diffsr/ and one entry in FAMILIES.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..errors import InfSceneError
from ..modelformat.check import check_weights
from ..modelformat.contract import ModelContract
from ..modelformat.files import DEFAULT_MODEL_DIR, FAMILY_WHEN_ABSENT, WEIGHTS_FILE, read_raw_config
from ..modelformat.folder import build_config, load_weights
from .e2diffsr.family import E2DiffSRFamily
from .family import ModelFamily
from .precision import fast_layout
from .sr3.family import SR3Family

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (SR3Family(), E2DiffSRFamily())}


def family_of(config: ModelContract) -> ModelFamily:
    """The family a config belongs to."""
    return FAMILIES[config.family]


def load_config(folder: Optional[str | Path] = None) -> ModelContract:
    """The config of a model folder (the bundled default when None), of the family it names (sr3 if none),
    with its types, ranges and data contract checked (modelformat/check.py)."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    raw, path = read_raw_config(folder)
    name = raw.setdefault("family", FAMILY_WHEN_ABSENT)
    if not isinstance(name, str) or name not in FAMILIES:
        raise InfSceneError(f"unknown model family {name!r} in {path}: this engine runs {', '.join(sorted(FAMILIES))}")
    return build_config(FAMILIES[name].config, raw, path)


def check_model(folder: Optional[str | Path] = None) -> ModelContract:
    """Validate a whole model folder without building or reading any weight: the config (load_config), then
    the safetensors header against the shapes its family's network would have (modelformat/check.py: check_weights)."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config = load_config(folder)
    check_weights(family_of(config).network, config, folder, folder / WEIGHTS_FILE)
    return config


def load_model(folder: Optional[str | Path] = None, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model folder (the bundled default when None) in eval mode on `device`, whatever its family, to run it
    (in the device's fast layout: precision.fast_layout); the folder is validated first, so nothing is built for a
    config or file that does not fit."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config = load_config(folder)
    return fast_layout(load_weights(family_of(config).network, config, folder, device), device)
