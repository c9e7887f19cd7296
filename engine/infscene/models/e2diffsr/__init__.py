"""The E2DiffSR-style family: a continuous-scale regression branch plus a 4-step latent diffusion of the missing detail.

Its probe run is registered with the model format here, so whoever imports one of its networks can save it with
its card (modelformat/probe.py)."""
from ...modelformat.probe import register_probe
from .network import E2DiffSRConfig
from .probe import probe_output

register_probe(E2DiffSRConfig.family, probe_output, projects=True)  # its decode sets every LR block's mean to the input pixel
