"""Property tests (hypothesis): every strategy returns k distinct valid positions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alsql.models.strategies import Candidates, get_strategy, margin, score_columns, strategy_names


@st.composite
def pools(draw):
    m = draw(st.integers(1, 60))
    c = draw(st.integers(2, 6))
    d = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c) * draw(st.sampled_from([0.1, 1.0, 10.0])), size=m)
    emb = rng.normal(size=(m, d)).astype(np.float32)
    if draw(st.booleans()):
        emb[: m // 2] = emb[0]  # duplicates
    k = draw(st.integers(0, m + 5))
    n_lab = draw(st.integers(0, 5))
    lab = rng.normal(size=(n_lab, d)).astype(np.float32)
    return p, emb, k, lab, seed


@pytest.mark.parametrize("name", strategy_names())
@settings(max_examples=25, deadline=None)
@given(pool=pools())
def test_selection_contract(name, pool):
    p, emb, k, lab, seed = pool
    scores = {key: v for key, v in score_columns(p).items() if key != "class_id"}
    scores["bald"] = np.random.default_rng(seed).random(len(p))
    cands = Candidates(
        np.arange(len(p)), p, emb, scores,
        labeled=(lambda: iter([lab])) if len(lab) else None, labeled_count=len(lab),
    )
    idx, score = get_strategy(name).select(cands, k, np.random.default_rng(seed))
    assert idx.dtype == np.int64
    assert len(idx) == min(k, len(p)) == len(score)
    assert len(set(idx.tolist())) == len(idx)
    assert np.all((idx >= 0) & (idx < len(p)))
    assert np.all(np.isfinite(score))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(2, 8), st.integers(0, 2**31 - 1))
def test_score_ranges(m, c, seed):
    p = np.random.default_rng(seed).dirichlet(np.ones(c), size=m)
    sc = score_columns(p)
    assert np.all((sc["confidence"] >= 1.0 / c - 1e-9) & (sc["confidence"] <= 1 + 1e-9))
    assert np.all((sc["margin"] >= -1e-12) & (sc["margin"] <= sc["confidence"] + 1e-12))
    assert np.all((sc["entropy"] >= -1e-9) & (sc["entropy"] <= np.log(c) + 1e-9))
    # Permuting classes changes no score.
    perm = np.random.default_rng(seed + 1).permutation(c)
    np.testing.assert_allclose(margin(p[:, perm]), sc["margin"], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 50), st.integers(1, 10), st.integers(0, 2**31 - 1))
def test_scalar_top_k_is_prefix_of_full_ranking(m, k, seed):
    p = np.random.default_rng(seed).dirichlet(np.ones(4), size=m)
    cands = Candidates(np.arange(m), p, scores={"margin": margin(p)})
    s = get_strategy("margin")
    small, _ = s.select(cands, k, np.random.default_rng(0))
    full, _ = s.select(cands, m, np.random.default_rng(0))
    assert small.tolist() == full[: len(small)].tolist()
