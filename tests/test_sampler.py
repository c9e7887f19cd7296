"""The paper's noise schedule, the respaced reverse step, and position-keyed noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infscene.diffusion.schedule import Schedule, linear_gammas, patch_noise
from infscene.raster.metrics import low_frequencies


def test_linear_schedule_matches_the_paper() -> None:
    gammas = linear_gammas()
    betas = np.linspace(1e-6, 1e-2, 2000)
    assert len(gammas) == 2000
    assert gammas[0] == pytest.approx(1 - 1e-6, abs=1e-15)
    assert gammas[-1] == pytest.approx(np.prod(1 - betas), rel=1e-12)


def test_full_chain_posterior_mean_equals_eq3_and_variance_the_posterior() -> None:
    gammas = linear_gammas()
    betas = np.linspace(1e-6, 1e-2, 2000)
    steps = Schedule.paper().respaced(2000)
    rng = np.random.default_rng(0)
    for step in (steps[0], steps[700], steps[-2]):
        t = step.index  # 0-based timestep when K = T
        assert step.gamma == gammas[t] and step.gamma_prev == gammas[t - 1]
        assert step.posterior_var == pytest.approx(betas[t] * (1 - gammas[t - 1]) / (1 - gammas[t]), rel=1e-9)
        x0, eps = rng.normal(size=100), rng.normal(size=100)
        y_t = np.sqrt(step.gamma) * x0 + np.sqrt(1 - step.gamma) * eps
        eq3 = (y_t - betas[t] / np.sqrt(1 - step.gamma) * eps) / np.sqrt(1 - betas[t])
        np.testing.assert_allclose(step.coef_x0 * x0 + step.coef_xt * y_t, eq3, rtol=1e-7, atol=1e-9)
    assert steps[-1].posterior_var == 0.0 and steps[-1].gamma_prev == 1.0


def test_respaced_chain_runs_from_noisiest_to_clean() -> None:
    steps = Schedule.paper().respaced(50)
    assert len(steps) == 50 and [s.index for s in steps] == list(range(49, -1, -1))
    assert steps[0].gamma == linear_gammas()[-1]
    assert all(a.gamma < b.gamma for a, b in zip(steps, steps[1:]))
    assert all(s.gamma_prev == n.gamma for s, n in zip(steps, steps[1:]))
    with pytest.raises(ValueError):
        Schedule.paper().respaced(0)
    with pytest.raises(ValueError):
        Schedule.paper().respaced(2001)


def test_patch_noise_is_keyed_by_position_not_by_batch() -> None:
    together = patch_noise(7, 3, [0, 1, 2], [4, 4, 5], (3, 8, 8))
    alone = patch_noise(7, 3, [1], [4], (3, 8, 8))
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    assert not torch.equal(patch_noise(7, 2, [1], [4], (3, 8, 8)), alone)
    assert not torch.equal(patch_noise(8, 3, [1], [4], (3, 8, 8)), alone)


def test_low_frequencies_keep_a_smooth_image() -> None:
    ramp = torch.linspace(-1, 1, 32)[None, None, None].expand(1, 3, 32, 32)
    interior = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    # bicubic with a = -0.75 (torch, OpenCV) reproduces a ramp only up to a small ripple
    torch.testing.assert_close(low_frequencies(ramp, 4.0)[interior], ramp[interior], atol=0.03, rtol=0)
    checker = torch.from_numpy(np.indices((32, 32)).sum(0) % 2 * 2.0 - 1).float()[None, None].expand(1, 3, 32, 32)
    assert low_frequencies(checker, 4.0).abs().max() < 1e-5
