"""The learning-rate schedule of `infscene train`: warm-up, constant rate, optional cosine decay."""
from __future__ import annotations

import math

import pytest

from infscene.training.trainer import TrainOptions, learning_rate


def schedule(**overrides) -> TrainOptions:
    return TrainOptions(hr=[], val=None, out="unused", steps=1000, lr=2e-4, warmup=100, **overrides)


def test_warm_up_is_linear_then_the_rate_is_constant_without_a_decay() -> None:
    options = schedule()
    assert learning_rate(options, 0) == pytest.approx(2e-4 / 100)
    assert learning_rate(options, 49) == pytest.approx(2e-4 * 50 / 100)
    assert [learning_rate(options, s) for s in (99, 500, 999)] == pytest.approx([2e-4] * 3)


def test_cosine_decay_leaves_earlier_steps_alone_and_reaches_zero_at_the_last_step() -> None:
    options = schedule(decay_start=600)
    assert learning_rate(options, 599) == pytest.approx(2e-4)
    assert learning_rate(options, 600) == pytest.approx(2e-4)
    assert learning_rate(options, 700) == pytest.approx(2e-4 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert learning_rate(options, 800) == pytest.approx(1e-4)
    assert learning_rate(options, 1000) == pytest.approx(0.0, abs=1e-12)
    rates = [learning_rate(options, s) for s in range(600, 1001)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
