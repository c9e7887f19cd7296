"""Iceplant (Carpobrotus edulis) probability layer for any NAIP-like raster, super-resolved or not.

features (the training CSV's columns recomputed on a raster) -> model (numpy perceptron from
safetensors) -> blend (Gaussian patch blending, paper Eq. 16-17) -> predict (windowed GeoTIFF
writer). train fits and exports the models; cli adds `infscene iceplant`.
"""
from .predict import write_iceplant_probability

__all__ = ["write_iceplant_probability"]
