"""Where the test data lives: committed fixtures, and the shared scenes beside the repository."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_scene(relative: str) -> Path:
    """A file from ../shared/data/scenes, or skip (with the reason) where it is not there."""
    path = SHARED_DATA / "scenes" / relative
    if not path.exists():
        pytest.skip(f"shared scene not available: {path}")
    return path
