"""Training pairs for SR3: high-resolution GeoTIFF crops and the low-resolution inputs made from them.

The low-resolution input is made the way a coarser sensor sees the ground: an optional optical
blur, area averaging by the scale factor (each low-resolution pixel is the mean of the ground it
covers), optional sensor noise and 8-bit quantisation. It is then upsampled back to the
high-resolution grid by bicubic interpolation, as the paper and SR3's low-frequency
operator do, so the conditioning image has the size of the high-resolution crop.

The scale factor is drawn per batch from a continuous range and returned with the batch: the
model is conditioned on it, so one model serves 5x as well as 3.7x. Training rasters are small
(a few megapixels), so they are read once into memory.
"""
from __future__ import annotations

import glob
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
import torch
from torch.nn import functional as F

from ..errors import InfSceneError
from ..modelformat.contract import ModelContract
from ..raster.scaling import fill_invalid, fit_scaling

RASTER_SUFFIXES = (".tif", ".tiff")
# A crop is redrawn when more than this fraction of its pixels is nodata (masked or pure black).
MAX_INVALID_FRACTION = 0.01
CROP_ATTEMPTS = 20


@dataclass(frozen=True)
class HRImage:
    """One high-resolution raster in memory: (H, W, C) values in model units (-1..1)."""

    pixels: np.ndarray  # float32 model units, -1..1
    valid: np.ndarray  # bool (H, W): inside the footprint and not nodata
    pixel_size_m: float | None
    path: Path


@dataclass(frozen=True)
class Batch:
    """Model-range tensors (B, C, P, P): the truth, its bicubic-upsampled LR, and the scale (B,)."""

    hr: torch.Tensor
    cond: torch.Tensor
    scale: torch.Tensor


@dataclass(frozen=True)
class Degradation:
    """How real low-resolution inputs differ from area-averaged truth.

    `blur_sigma` is the std of the Gaussian point-spread function in low-resolution pixels and
    `noise_std` the std of the additive sensor noise in the model's value units (0-255);
    each batch draws both uniformly between 0 and these maxima, so the model sees sharp and
    soft, clean and noisy inputs.
    """

    blur_sigma: float = 0.0
    noise_std: float = 0.0


def resolve_sources(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """GeoTIFF paths from a folder (searched recursively), a glob pattern, a file, or a list of these."""
    if not isinstance(spec, (str, Path)):
        return sorted({path for item in spec for path in resolve_sources(item)})
    path = Path(spec)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES]
    elif path.is_file():
        found = [path]
    else:
        found = [Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file()]
    if not found:
        raise InfSceneError(f"no GeoTIFF found for {spec}: give a folder, a glob such as 'dir/*.tif' or files")
    return sorted(found)


def read_hr_image(path: Path, config: ModelContract) -> HRImage:
    """Read the model's bands (the first `config.channels`) in model units, with their validity mask.

    Values go through the inference pipeline's own scaling (uint8 as is, other types stretched
    per band), so the model is trained on exactly the values it will be given.
    """
    try:
        with rasterio.open(path) as dataset:
            if dataset.count < config.channels:
                raise InfSceneError(f"{path} has {dataset.count} bands; the model needs {config.channels} ({', '.join(config.bands)})")
            raw = dataset.read(list(range(1, config.channels + 1)))
            valid = dataset.dataset_mask() > 0
            pixel_size = abs(dataset.res[0]) if dataset.crs is not None and dataset.crs.is_projected else None
    except rasterio.errors.RasterioIOError as exc:
        raise InfSceneError(f"cannot read {path}: {exc}") from exc
    # Pure black pixels are the unmasked nodata of many mosaics (collars, drone footprints).
    valid &= raw.max(axis=0) > 0
    if not valid.any():
        raise InfSceneError(f"{path} has no valid pixel; leave it out of the training set")
    values = raw.astype(np.float64)
    pixels = fit_scaling(values, valid, raw.dtype, config).to_model(fill_invalid(values, valid))
    return HRImage(np.ascontiguousarray(pixels.transpose(1, 2, 0)), valid, pixel_size, path)


def load_hr_images(spec: str | Path | Sequence[str | Path], config: ModelContract, min_side: int,
                   remedy: str = "use a smaller --crop") -> list[HRImage]:
    """All rasters of `spec` in memory; those smaller than one crop are refused, not silently skipped.

    `remedy` is what the refusal tells the user to do: the flag that sets this crop differs by family, and a
    validation crop has a fixed side, so there the only remedy is to leave the raster out.
    """
    images = [read_hr_image(path, config) for path in resolve_sources(spec)]
    small = [str(img.path) for img in images if min(img.pixels.shape[:2]) < min_side]
    if small:
        raise InfSceneError(f"rasters smaller than the {min_side}-pixel crop: {', '.join(small)}; {remedy}")
    return images


def median_pixel_size(images: Sequence[HRImage]) -> float | None:
    """Pixel size (m) of the median training pixel: what 'high resolution' meant for this model."""
    sized = [(img.pixel_size_m, img.valid.sum()) for img in images if img.pixel_size_m is not None]
    if not sized:
        return None
    sizes, counts = np.array(sized, dtype=np.float64).T
    order = np.argsort(sizes)
    cumulative = np.cumsum(counts[order])
    return round(float(sizes[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)]), 3)


def random_dihedral(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/90-degree turns of an (H, W, C) patch: overhead imagery has no 'up'."""
    turned = np.rot90(patch, k=int(rng.integers(4)), axes=(0, 1))
    return np.ascontiguousarray(turned[:, ::-1] if rng.integers(2) else turned)


def random_crop(image: HRImage, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A crop x crop window that is (almost) all valid; the last try is kept if none is."""
    height, width = image.valid.shape
    for _ in range(CROP_ATTEMPTS):
        top, left = int(rng.integers(height - crop + 1)), int(rng.integers(width - crop + 1))
        if 1.0 - image.valid[top : top + crop, left : left + crop].mean() <= MAX_INVALID_FRACTION:
            break
    return image.pixels[top : top + crop, left : left + crop]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflected borders; sigma in pixels."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def lr_size(side: int, scale: float) -> int:
    """Low-resolution side for a high-resolution side at `scale` (as raster.metrics.low_frequencies)."""
    return max(1, round(side / scale))


def degrade(
    hr: torch.Tensor,
    scale: float,
    config: ModelContract,
    blur_sigma: float = 0.0,
    noise_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The low-resolution image (B, C, h, w) that a sensor `scale` times coarser records of `hr`.

    Both are in model units (-1..1); `noise_std` is in the model's value units (0-255), the
    unit users think in. Blur is applied on the high-resolution grid (sigma given in
    low-resolution pixels), then area averaging, then noise. Without blur and noise the result
    is exactly the area mean, which is what SR3's LR-consistency operator (models/sr3/denoiser.py) assumes.
    """
    h, w = hr.shape[-2:]
    small = F.interpolate(gaussian_blur(hr, blur_sigma * scale), size=(lr_size(h, scale), lr_size(w, scale)), mode="area")
    if noise_std <= 0:
        return small
    std = noise_std * 2.0 / (config.value_max - config.value_min)
    return (small + torch.randn(small.shape, generator=generator, device=small.device) * std).clamp(-1.0, 1.0)


def upsample(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic back to the high-resolution grid: the conditioning image of SR3."""
    return F.interpolate(lr, size=size, mode="bicubic", align_corners=False)


def make_batch(
    patches: Sequence[np.ndarray],
    scale: float,
    config: ModelContract,
    degradation: Degradation = Degradation(),
    generator: torch.Generator | None = None,
) -> Batch:
    """Stack (P, P, C) model-unit patches into a training batch at one scale factor."""
    hr = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float()
    draws = torch.rand(2, generator=generator)
    lr = degrade(
        hr,
        scale,
        config,
        blur_sigma=float(draws[0]) * degradation.blur_sigma,
        noise_std=float(draws[1]) * degradation.noise_std,
        generator=generator,
    )
    return Batch(hr, upsample(lr, tuple(hr.shape[-2:])), torch.full((hr.shape[0],), float(scale)))


def step_streams(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The random streams of one training step, keyed by (seed, step) and not by history.

    A run resumed from a checkpoint therefore draws exactly the batches, timesteps and noise
    that an uninterrupted run would have drawn.
    """
    entropy = np.random.SeedSequence([seed, step])
    return np.random.default_rng(entropy), torch.Generator().manual_seed(int(entropy.generate_state(1, np.uint64)[0]) >> 1)


class TrainingBatches:
    """Random batches: area-weighted image choice, crop, dihedral turn, one scale per batch.

    Images are chosen with probability proportional to their valid area, so every training
    pixel is equally likely whatever the size of the raster it lies in.
    """

    def __init__(
        self,
        images: Sequence[HRImage],
        config: ModelContract,
        crop: int,
        batch_size: int,
        degradation: Degradation = Degradation(),
    ) -> None:
        if crop % config.size_multiple:
            raise InfSceneError(f"crop {crop} must be a multiple of {config.size_multiple} for this model")
        self.images = list(images)
        self.config = config
        self.crop = crop
        self.batch_size = batch_size
        self.degradation = degradation
        areas = np.array([img.valid.sum() for img in self.images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def draw(self, rng: np.random.Generator, generator: torch.Generator) -> Batch:
        chosen = rng.choice(len(self.images), size=self.batch_size, p=self.weights)
        patches = [random_dihedral(random_crop(self.images[i], self.crop, rng), rng) for i in chosen]
        scale = float(rng.uniform(self.config.scale_min, self.config.scale_max))
        return make_batch(patches, scale, self.config, self.degradation, generator)


def fixed_batches(images: Sequence[HRImage], config: ModelContract, crop: int, scales: Sequence[float]) -> list[Batch]:
    """The validation set: the centre crop of each image at each scale, no blur or noise.

    Fixed crops and scales make validation losses comparable across checkpoints and runs.
    """
    centres = []
    for img in images:
        height, width = img.valid.shape
        top, left = (height - crop) // 2, (width - crop) // 2
        centres.append(img.pixels[top : top + crop, left : left + crop])
    return [make_batch(centres, scale, config) for scale in scales]
