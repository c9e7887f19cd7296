"""Training checkpoints: step-NNNNNNN/ folders of safetensors (weights, EMA, optimizer, an objective's own
networks) and a JSON state written last, so a folder without it is incomplete and a run resumes from the newest
complete one. The state holds the sha256 of every tensor file beside it, checked before anything is loaded: a garbled
or swapped file is named in one line, never trained on. No pickles anywhere.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..checksums import file_damage, file_sha256
from ..errors import InfSceneError

CHECKPOINT_PREFIX = "step-"
STATE_FILE = "state.json"  # written last: a checkpoint folder without it is incomplete
KEEP_CHECKPOINTS = 2
AUXILIARY_FILE = "auxiliary.safetensors"  # an objective's own networks (stage 3's critic), when it has any


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state into flat named tensors (safetensors) and JSON-able groups."""
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous()
        for index, entry in state["state"].items()
        for name, value in entry.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(folder: Path, step: int, model: nn.Module, averaged: nn.Module, optimizer: torch.optim.Optimizer, extra: dict,
                    auxiliary: Optional[dict[str, torch.Tensor]] = None) -> Path:
    """Write step-NNNNNNN/ (weights, EMA, optimizer, the objective's auxiliary networks, state.json last) and drop older ones."""
    target = folder / f"{CHECKPOINT_PREFIX}{step:07d}"
    target.mkdir(parents=True, exist_ok=True)
    if auxiliary:
        save_file({k: v.contiguous() for k, v in auxiliary.items()}, str(target / AUXILIARY_FILE))
    save_file(cpu_state(model), str(target / "model.safetensors"))
    save_file(cpu_state(averaged), str(target / "ema.safetensors"))
    tensors, groups = optimizer_tensors(optimizer)
    save_file(tensors, str(target / "optimizer.safetensors"))
    state = {"step": step, "model_config": asdict(model.config), "optimizer": groups, **extra, "files": tensor_files(target)}
    partial = target / (STATE_FILE + ".part")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(target / STATE_FILE)
    for old in complete_checkpoints(folder)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old)
    return target


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders whose state.json was written, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / STATE_FILE).is_file())


def tensor_files(folder: Path) -> dict[str, str]:
    """sha256 of every safetensors file of a checkpoint folder, by name."""
    return {p.name: file_sha256(p) for p in sorted(folder.glob("*.safetensors"))}


def verified_state(path: Path) -> dict:
    """The JSON state of a checkpoint folder whose tensor files all match the checksums it records; else one line
    naming what is damaged (the folder is then never used)."""
    remedy = "remove that folder to resume from the checkpoint before it, or train afresh with another --out"
    try:
        state = json.loads((path / STATE_FILE).read_text())
        recorded = dict(state["files"])
    except OSError as exc:
        raise InfSceneError(f"{path} is not a training checkpoint (no readable {STATE_FILE})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise InfSceneError(f"checkpoint {path}: {STATE_FILE} is damaged or has no checksums ({type(exc).__name__}); {remedy}") from exc
    damage = file_damage(recorded, tensor_files(path))
    if damage:
        raise InfSceneError(f"checkpoint {path}: {damage}; {remedy}")
    return state


def load_checkpoint(path: Path, model: nn.Module, averaged: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore weights, EMA weights (`averaged`) and optimizer in place, once every file is checked against its
    checksum; return the JSON state (step, elapsed time...)."""
    state = verified_state(path)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    averaged.load_state_dict(load_file(str(path / "ema.safetensors")))
    restore_optimizer(optimizer, load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    return state
