"""The SR3 family (the InfScene paper's model): a pixel-space conditional U-Net, its reverse-step denoiser
with the LR-consistency projection, and its training objective (Eq. 2).

Its probe run is registered with the model format here, so whoever imports one of its networks can save it with
its card (modelformat/probe.py)."""
from ...modelformat.probe import register_probe
from .network import ModelConfig
from .probe import probe_output

register_probe(ModelConfig.family, probe_output, projects=False)  # LR-consistency replaces low frequencies, not block means
