"""The model families the engine runs, listed once, and the model folders resolved through them.

This is the one module that names the families: everything above it (the planner, the executors, the train
command) asks it for a folder's or a config's family and then works through the ModelFamily class alone.
Adding a family is a folder beside sr3/ and e2diffsr/ and one entry in FAMILIES.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import InfSceneError
from ..modelformat.card import CARD_KEY, Card, card_note, check_fingerprint, check_probe, new_card, read_card
from ..modelformat.check import check_weights
from ..modelformat.contract import ModelContract
from ..modelformat.files import DEFAULT_MODEL_DIR, FAMILY_WHEN_ABSENT, WEIGHTS_FILE, read_raw_config
from ..modelformat.folder import build_config, load_weights, write_config
from .e2diffsr.family import E2DiffSRFamily
from .family import ModelFamily
from .precision import fast_layout
from .sr3.family import SR3Family

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (SR3Family(), E2DiffSRFamily())}


def family_of(config: ModelContract) -> ModelFamily:
    """The family a config belongs to."""
    return FAMILIES[config.family]


def _built(raw: dict[str, Any], path: Path) -> ModelContract:
    """The checked config of a config file's JSON (without its card), of the family it names (sr3 if none)."""
    name = raw.setdefault("family", FAMILY_WHEN_ABSENT)
    if not isinstance(name, str) or name not in FAMILIES:
        raise InfSceneError(f"unknown model family {name!r} in {path}: this engine runs {', '.join(sorted(FAMILIES))}")
    return build_config(FAMILIES[name].config, raw, path)


def _read(folder: Path) -> tuple[ModelContract, Optional[Card]]:
    """The checked config of a model folder and the card it holds (None: a folder without one)."""
    raw, path = read_raw_config(folder)
    card = read_card(raw, path)
    return _built(raw, path), card


def load_config(folder: Optional[str | Path] = None) -> ModelContract:
    """The config of a model folder (the bundled default when None), of the family it names (sr3 if none),
    with its types, ranges and data contract checked (modelformat/check.py)."""
    return _read(Path(folder) if folder is not None else DEFAULT_MODEL_DIR)[0]


def check_model(folder: Optional[str | Path] = None) -> ModelContract:
    """Validate a whole model folder before a run: the config (load_config), the safetensors header against the shapes
    its family's network would have (modelformat/check.py: check_weights), the weights against the sha256 its card
    records, and the probe: the model run on a small real image, its output held to the card's range, or, without a
    card, refused only as noise (modelformat/card.py). The probe builds the model on the CPU, once per process for a
    given weights file, config and card."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config, card = _read(folder)
    network = family_of(config).network
    check_weights(network, config, folder, folder / WEIGHTS_FILE)
    check_fingerprint(folder, card)
    check_probe(folder, config, card, lambda: load_weights(network, config, folder, "cpu", card))
    return config


def model_notes(folder: Optional[str | Path] = None) -> tuple[str, ...]:
    """What a run should say of a model folder that check_model accepts but whose card cannot vouch for its weights
    (a folder without a card, a model the probe does not read); empty for a carded, probed model."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config, card = _read(folder)
    note = card_note(folder, config, card)
    return () if note is None else (note,)


def record_card(folder: str | Path) -> Path:
    """Write the card of a model folder's weights as they are into its config.json: for a folder written before cards,
    or weights its owner changed on purpose (a promotion, a retrained file). Whoever calls it vouches for the weights."""
    folder = Path(folder)
    raw, path = read_raw_config(folder)
    raw.pop(CARD_KEY, None)  # the card it replaces, whatever it says
    config = _built(dict(raw), path)
    model = load_weights(family_of(config).network, config, folder, "cpu", card=None)
    write_config(folder, {**raw, CARD_KEY: new_card(model, folder / WEIGHTS_FILE, folder).as_json()})
    return folder


def load_model(folder: Optional[str | Path] = None, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model folder (the bundled default when None) in eval mode on `device`, whatever its family, to run it
    (in the device's fast layout: precision.fast_layout); the folder is validated first, so nothing is built for a
    config or file that does not fit, and the weights are checked against their card."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config, card = _read(folder)
    return fast_layout(load_weights(family_of(config).network, config, folder, device, card), device)
