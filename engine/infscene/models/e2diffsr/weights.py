"""An e2diffsr model folder read without the registry.

The stages that start from --init weights (training.py) sit below the registry that lists this family, so
they read the folder through the format alone, knowing which family it must hold.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...modelformat.folder import load_network
from .network import E2DiffSR, E2DiffSRConfig


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> E2DiffSR:
    """The e2diffsr model in `folder`, in eval mode on `device`; InfSceneError for a folder of another family."""
    model = load_network(E2DiffSRConfig, E2DiffSR, folder, device)
    assert isinstance(model, E2DiffSR)
    return model
