"""What every model family shares: the data contract of a model folder (no torch: the plugin's quick plan reads it).

A model folder's `config.json` names its `family` (`sr3` when absent, as in folders written before
there was a second family). Whatever the family, the engine needs to know the same things before
it builds anything: which bands the model reads, how their values map to model units, which scale
factors it was trained for and the patch side it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class ModelContract:
    """The fields every family's config has: the data contract, the trained range and the provenance."""

    name: str = ""
    family: str = ""
    bands: list[str] = field(default_factory=lambda: ["red", "green", "blue"])
    scale_min: float = 2.0
    scale_max: float = 8.0
    patch_size: int = 128
    # Model values are 8-bit reflectance-like intensities mapped linearly from [0, 255] to [-1, 1].
    value_min: float = 0.0
    value_max: float = 255.0
    train_pixel_size_m: Optional[float] = None
    trained: bool = False
    notes: str = ""

    @property
    def channels(self) -> int:
        return len(self.bands)

    @property
    def size_multiple(self) -> int:
        """Output patch sides must be a multiple of this."""
        return 1
