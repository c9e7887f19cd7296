"""The model-folder format: `model.safetensors` (weights, never a pickle) and `config.json`, whose `family` field
says which network the weights belong to.

Everything here is given the family's config and network classes, so the format is read and written without
the registry: the trainer saves through it, and a family's training reads its --init weights through it,
both below the registry that lists the families.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import InfSceneError
from .card import CARD_KEY, Card, check_fingerprint, new_card, read_card
from .check import check_config_fields, check_contract, check_weights
from .contract import ModelContract
from .files import CONFIG_FILE, WEIGHTS_FILE, read_raw_config


def save_model(model: nn.Module, folder: str | Path) -> Path:
    """Write weights and config to `folder` (created if needed), the config with the card of the weights (card.py):
    their sha256 and their probe distance, measured on the model read back from the file as a check will read it."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    try:
        card = new_card(load_weights(type(model), model.config, out, "cpu", card=None), out / WEIGHTS_FILE, out)
    except InfSceneError:  # weights no card can describe (NaN on the probe): no folder that looks like a model
        (out / WEIGHTS_FILE).unlink()
        raise
    write_config(out, {**asdict(model.config), CARD_KEY: card.as_json()})
    return out


def write_config(folder: Path, raw: dict[str, Any]) -> None:
    """Write a folder's config.json whole or not at all (a card rewritten in place never leaves half a file)."""
    partial = folder / (CONFIG_FILE + ".part")
    partial.write_text(json.dumps(raw, indent=2) + "\n")
    partial.replace(folder / CONFIG_FILE)


def build_config(config_class: type[ModelContract], raw: dict[str, Any], path: Path) -> ModelContract:
    """The config of class `config_class` from the JSON at `path`, its types, ranges and data contract checked."""
    check_config_fields(config_class, raw, path)
    try:
        config = config_class(**raw)
    except (TypeError, ValueError) as exc:
        raise InfSceneError(f"invalid model config {path}: {exc}") from exc
    check_contract(config, path)
    return config


def load_weights(network: type[nn.Module], config: ModelContract, folder: Path, device: str | torch.device,
                 card: Optional[Card]) -> nn.Module:
    """Build the network of a checked config and load the folder's weights into it, in eval mode on `device`;
    the safetensors header is checked against the network's shapes first, so nothing is built for a file that
    does not fit, then the file against the sha256 its card records (None: a folder without one)."""
    check_weights(network, config, folder, folder / WEIGHTS_FILE)
    check_fingerprint(folder, card)
    with torch.device("meta"):  # built without memory or random initialisation: every tensor comes from the file
        model = network(config)
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), assign=True)
    except (RuntimeError, OSError, SafetensorError) as exc:
        raise InfSceneError(f"model weights do not match config in {folder}: {exc}".splitlines()[0]) from exc
    return model.to(device).eval()


def load_network(config_class: type[ModelContract], network: type[nn.Module], folder: str | Path,
                 device: str | torch.device = "cpu") -> nn.Module:
    """A model folder of one known family (what a family's training reads as its --init weights)."""
    folder = Path(folder)
    raw, path = read_raw_config(folder)
    card = read_card(raw, path)
    expected = config_class().family
    found = raw.setdefault("family", expected)
    if found != expected:
        raise InfSceneError(f"{folder} holds a {found} model, not {expected}")
    return load_weights(network, build_config(config_class, raw, path), folder, device, card)
