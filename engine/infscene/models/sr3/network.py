"""The SR3 conditional U-Net, the model families, and the on-disk format (safetensors weights + JSON config).

The network predicts the noise in a noisy high-resolution patch given the bicubic-upsampled
low-resolution patch (concatenated on the channel axis), the continuous noise level
sqrt(gamma) and the scale factor. Conditioning on the scale lets one model serve 5x
(3 m -> 0.6 m) as well as non-integer factors (3.7 m -> 0.6 m).

Weights never go through pickle: a model folder holds `model.safetensors` and `config.json`, whose
`family` field (`sr3` when absent) says which network the weights belong to (`families()`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ..contract import ModelContract, sinusoidal_embedding
from ..e2diffsr.network import E2DiffSR, E2DiffSRConfig
from ...errors import InfSceneError
from ..model_check import check_config_fields, check_contract, check_weights, read_config_json

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[4] / "resources" / "models" / "e2diffsr"


@dataclass
class ModelConfig(ModelContract):
    """The SR3 family: a pixel-space conditional U-Net (the InfScene paper's model)."""

    name: str = "sr3"
    family: str = "sr3"
    base_channels: int = 32
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 4])
    res_blocks: int = 1
    norm_groups: int = 8
    dropout: float = 0.0
    patch_size: int = 128

    @property
    def size_multiple(self) -> int:
        """Patch sides must be a multiple of this (one halving per extra U-Net level)."""
        return 2 ** (len(self.channel_mults) - 1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block whose features are shifted by the embedding."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention, used only at the lowest resolution where it is cheap."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
        )[:, 0]
        return x + self.out(attended.transpose(1, 2).reshape(b, c, h, w))


class SR3UNet(nn.Module):
    """eps_theta(x_lr_up, y_t, sqrt(gamma), scale) for patches whose side is a multiple of 2^(levels-1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c0, groups, drop = config.base_channels, config.norm_groups, config.dropout
        emb_dim = 4 * c0
        self.noise_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.scale_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(2 * config.channels, c0, 3, padding=1)

        widths = [c0 * m for m in config.channel_mults]
        self.down = nn.ModuleList()
        skip_widths = [c0]
        cur = c0
        for level, width in enumerate(widths):
            for _ in range(config.res_blocks):
                self.down.append(ResBlock(cur, width, emb_dim, groups, drop))
                cur = width
                skip_widths.append(cur)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skip_widths.append(cur)

        self.mid1 = ResBlock(cur, cur, emb_dim, groups, drop)
        self.mid_attn = SelfAttention(cur, groups)
        self.mid2 = ResBlock(cur, cur, emb_dim, groups, drop)

        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(config.res_blocks + 1):
                self.up.append(ResBlock(cur + skip_widths.pop(), width, emb_dim, groups, drop))
                cur = width
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(nn.GroupNorm(groups, cur), nn.SiLU(), nn.Conv2d(cur, config.channels, 3, padding=1))

    def forward(
        self, cond: torch.Tensor, noisy: torch.Tensor, sqrt_gamma: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        c0 = self.config.base_channels
        emb = self.noise_mlp(sinusoidal_embedding(sqrt_gamma, c0)) + self.scale_mlp(
            sinusoidal_embedding(torch.log(scale) / 10.0, c0)
        )
        h = self.inp(torch.cat([cond, noisy], dim=1))
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out(h)


@dataclass(frozen=True)
class Family:
    """A model family: its config class and the network a config builds."""

    config: type[ModelContract]
    network: type[nn.Module]


def families() -> dict[str, Family]:
    """The model families the engine runs, by the name a config's `family` field gives."""
    return {"sr3": Family(ModelConfig, SR3UNet), "e2diffsr": Family(E2DiffSRConfig, E2DiffSR)}


def save_model(model: nn.Module, folder: str | Path) -> Path:
    """Write weights and config to `folder` (created if needed)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2) + "\n")
    return out


def load_config(folder: str | Path | None = None) -> ModelContract:
    """The config of a model folder (the bundled default when None), of the family it names (sr3 if none),
    with its types, ranges and data contract checked (model_check)."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise InfSceneError(f"not a model folder (no {CONFIG_FILE}): {folder}")
    raw = read_config_json(path)
    name = raw.setdefault("family", "sr3")
    known = families()
    if not isinstance(name, str) or name not in known:
        raise InfSceneError(f"unknown model family {name!r} in {path}: this engine runs {', '.join(sorted(known))}")
    check_config_fields(known[name].config, raw, path)
    try:
        config = known[name].config(**raw)
    except (TypeError, ValueError) as exc:
        raise InfSceneError(f"invalid model config {path}: {exc}") from exc
    check_contract(config, path)
    return config


def check_model(folder: str | Path | None = None) -> ModelContract:
    """Validate a whole model folder without building or reading any weight: the config (load_config), then
    the safetensors header against the shapes its family's network would have (model_check.check_weights)."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config = load_config(folder)
    check_weights(families()[config.family].network, config, folder, folder / WEIGHTS_FILE)
    return config


def resolve_devices(spec: str) -> list[torch.device]:
    """Where the model runs, one model copy per entry.

    `auto`: every CUDA GPU torch sees, else the CPU. `cuda`: every GPU. `cpu`. Or a comma-separated
    list such as `cuda:0,cuda:2` (`cpu,cpu` runs two CPU workers). Patch batches are spread over
    the entries (workers.DenoiserPool); the result does not depend on how many there are.
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    every_gpu = [torch.device(f"cuda:{i}") for i in range(gpus)]
    if spec == "auto":
        return every_gpu or [torch.device("cpu")]
    devices: list[torch.device] = []
    for name in (part.strip() for part in spec.split(",")):
        if name == "cpu":
            devices.append(torch.device("cpu"))
            continue
        if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
            raise InfSceneError(f"unknown device {name!r}: use auto, cpu, cuda, or a list such as cuda:0,cuda:1")
        if not gpus:
            raise InfSceneError(f"--device {name} was asked for but torch sees no CUDA GPU; use --device cpu or auto")
        if name == "cuda":
            devices.extend(every_gpu)
        elif int(name[5:]) >= gpus:
            raise InfSceneError(f"{name} does not exist: torch sees {gpus} CUDA GPU(s), cuda:0 to cuda:{gpus - 1}")
        else:
            devices.append(torch.device(name))
    return devices


def resolve_device(name: str) -> torch.device:
    """The first device of resolve_devices(name), for work that runs on one device (training, timing)."""
    return resolve_devices(name)[0]


def load_model(folder: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model folder (the bundled default when None) in eval mode on `device`, whatever its family;
    the folder is validated first (check_model), so nothing is built for a config or file that does not fit."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    config = check_model(folder)
    model = families()[config.family].network(config)
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except (RuntimeError, OSError, SafetensorError) as exc:
        raise InfSceneError(f"model weights do not match config in {folder}: {exc}".splitlines()[0]) from exc
    return model.to(device).eval()
