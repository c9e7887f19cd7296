"""Iceplant (Carpobrotus edulis) probability layer for any NAIP-like raster, super-resolved or not.

features (the training CSV's columns recomputed on a raster) -> model (numpy perceptron from
safetensors) -> blend (Gaussian patch blending, paper Eq. 16-17) -> predict (windowed GeoTIFF
writer). train fits and exports the models; cli adds `infscene iceplant`.

`write_iceplant_probability` is imported on first use (PEP 562): predict needs scikit-image and scipy, which every
`infscene` command would otherwise load at start (about 0.35 s), and the plugin's planning call with them.
"""
from __future__ import annotations

from typing import Any

__all__ = ["write_iceplant_probability"]


def __getattr__(name: str) -> Any:
    if name == "write_iceplant_probability":
        from .predict import write_iceplant_probability

        return write_iceplant_probability
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
