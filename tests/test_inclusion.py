"""Inclusion probabilities of active evaluation rounds and the draw that honours them
(alsql.models.strategies.inclusion): synthetic inputs with known answers, properties,
and inclusion frequencies measured by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alsql.models.strategies.inclusion import (
    active_inclusion_probs,
    draw_with_probs,
    inverse_probability_weights,
    uncertainty_for,
)


def test_probabilities_follow_the_formula_when_none_is_capped():
    u = np.array([0.0, 1.0, 2.0, 1.0])
    pi = active_inclusion_probs(u, 2, floor=0.2)
    expected = 2 * (0.8 * u / u.sum() + 0.2 / 4)
    np.testing.assert_allclose(pi, expected)
    assert pi[0] == pytest.approx(0.1)  # no uncertainty: the floor, never 0


def test_capped_items_give_their_excess_to_the_others():
    u = np.array([100.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    pi = active_inclusion_probs(u, 3, floor=0.2)
    assert pi[0] == 1.0
    assert pi.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(pi[1:], 0.4)  # the rest share K - 1 equally (equal scores)


def test_zero_uncertainty_is_a_uniform_draw_and_a_budget_over_the_pool_takes_all():
    np.testing.assert_allclose(active_inclusion_probs(np.zeros(10), 4), 0.4)
    np.testing.assert_allclose(active_inclusion_probs(np.ones(3), 5), 1.0)
    np.testing.assert_allclose(inverse_probability_weights(np.full(4, 0.4), 4, 10), 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=200), st.integers(1, 250),
       st.floats(0.01, 1.0))
def test_probabilities_are_in_range_sum_to_the_budget_and_respect_the_floor(u, k, floor):
    pi = active_inclusion_probs(np.array(u), k, floor)
    n = len(u)
    assert np.all(pi > 0) and np.all(pi <= 1.0)
    assert pi.sum() == pytest.approx(min(k, n), rel=1e-9)
    assert np.all(pi >= min(1.0, floor * k / n) * (1 - 1e-12))
    idx = draw_with_probs(pi, k, seed=1)
    assert len(idx) == min(k, n) and len(set(idx.tolist())) == len(idx)


def test_draw_is_seeded_and_hits_each_item_with_its_probability():
    rng = np.random.default_rng(4)
    u = rng.random(60) ** 3
    pi = active_inclusion_probs(u, 12)
    a, b = draw_with_probs(pi, 12, 99), draw_with_probs(pi, 12, 99)
    assert np.array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(draw_with_probs(pi, 12, 100)))
    draws = 6000
    hits = np.zeros(60)
    weight_sums = []
    for s in range(draws):
        idx = draw_with_probs(pi, 12, s)
        hits[idx] += 1
        weight_sums.append(inverse_probability_weights(pi[idx], 12, 60).sum())
    z = (hits / draws - pi) / np.sqrt(pi * (1 - pi) / draws + 1e-12)
    assert np.abs(z).max() < 4.5  # 60 items, each within 4.5 standard errors
    assert np.mean(weight_sums) == pytest.approx(12, rel=0.02)  # E[sum of weights] = K


def test_uncertainty_targets():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.4, 0.4], [0.5, 0.5, 0.0]])
    conf = probs.max(axis=1)
    np.testing.assert_allclose(uncertainty_for("confidence", confidence=conf), 1 - conf)
    np.testing.assert_allclose(uncertainty_for("correct", confidence=conf), np.sqrt(conf * (1 - conf)))
    p = 1 - probs[:, 0]  # class 0 is the normal one
    np.testing.assert_allclose(uncertainty_for("abnormal", probs=probs, abnormal=np.array([False, True, True])),
                               np.sqrt(p * (1 - p)))
    np.testing.assert_allclose(uncertainty_for("class_share", probs=probs),
                               np.sqrt((probs * (1 - probs)).sum(axis=1)))


@pytest.mark.parametrize("call, match", [
    (lambda: active_inclusion_probs([1.0, -1.0], 1), "finite scores >= 0"),
    (lambda: active_inclusion_probs([1.0, np.nan], 1), "finite scores >= 0"),
    (lambda: active_inclusion_probs([1.0], 0), "budget"),
    (lambda: active_inclusion_probs([1.0], 1, floor=0), "floor"),
    (lambda: draw_with_probs([0.5, 0.2], 1, 0), "sum to"),
    (lambda: draw_with_probs([1.5, 0.5], 2, 0), r"\[0, 1\]"),
    (lambda: uncertainty_for("nope", confidence=[1.0]), "expected one of"),
    (lambda: uncertainty_for("abnormal", probs=np.ones((2, 3))), "mask"),
])
def test_bad_input_is_refused_in_one_line(call, match):
    with pytest.raises(ValueError, match=match):
        call()
