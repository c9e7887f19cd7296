"""The E2DiffSR-style family: a continuous-scale regression branch plus a 4-step latent diffusion of the missing detail."""
