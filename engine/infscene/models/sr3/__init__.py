"""The SR3 family (the InfScene paper's model): a pixel-space conditional U-Net, its reverse-step denoiser
with the LR-consistency projection, and its training objective (Eq. 2)."""
