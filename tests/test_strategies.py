"""Strategies on synthetic inputs with known rankings."""

from __future__ import annotations

import numpy as np
import pytest

from alsql.errors import AlsqlError
from alsql.models.strategies import (
    Candidates,
    bald,
    confidence,
    entropy,
    get_strategy,
    margin,
    min_sq_distances,
    score_columns,
    strategy_names,
)
from alsql.models.strategies.clustering import round_robin, typicality
from alsql.models.strategies.diversity import kcenter_greedy, kmeanspp_gradient

P = np.array(
    [
        [0.98, 0.01, 0.01],  # sure
        [0.40, 0.35, 0.25],  # unsure, small margin
        [0.34, 0.33, 0.33],  # most unsure
        [0.70, 0.20, 0.10],
        [0.50, 0.50, 0.00],  # margin 0, but only two classes in play
    ]
)


def _cands(p=P, emb=None, **kw):
    sc = score_columns(p)
    scores = {k: v for k, v in sc.items() if k != "class_id"}
    return Candidates(np.arange(len(p)), p, emb, scores, **kw)


def test_strategies_registered():
    assert set(strategy_names()) == {
        "random", "least_confidence", "margin", "entropy", "bald",
        "coreset", "badge", "cluster_margin", "typiclust",
        "balanced_margin", "class_balanced", "rare_boost", "similar",
    }
    with pytest.raises(AlsqlError, match="expected one of"):
        get_strategy("nope")


def test_scores_known_values():
    np.testing.assert_allclose(confidence(P), [0.98, 0.40, 0.34, 0.70, 0.50])
    np.testing.assert_allclose(margin(P), [0.97, 0.05, 0.01, 0.50, 0.0], atol=1e-12)
    np.testing.assert_allclose(entropy([[0.5, 0.5]]), [np.log(2)])
    np.testing.assert_allclose(entropy([[1.0, 0.0]]), [0.0], atol=1e-9)
    # Two dropout samples that disagree completely: BALD = log 2; identical samples: 0.
    s = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(bald(s), [np.log(2)], atol=1e-9)
    np.testing.assert_allclose(bald(np.stack([P, P])), np.zeros(5), atol=1e-9)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("least_confidence", [2, 1, 4]),
        ("margin", [4, 2, 1]),
        ("entropy", [2, 1, 3]),  # H(.7,.2,.1)=0.80 > H(.5,.5,0)=0.69
    ],
)
def test_scalar_rankings(name, expected):
    idx, score = get_strategy(name).select(_cands(), 3, np.random.default_rng(0))
    assert idx.tolist() == expected
    assert np.all(np.diff(score) <= 1e-12)  # best first


def test_bald_needs_scores():
    with pytest.raises(AlsqlError, match="bald"):
        get_strategy("bald").select(_cands(), 2, np.random.default_rng(0))
    c = _cands()
    c.scores["bald"] = np.array([0.0, 0.3, 0.1, 0.9, 0.2])
    idx, _ = get_strategy("bald").select(c, 2, np.random.default_rng(0))
    assert idx.tolist() == [3, 1]


def test_kcenter_picks_far_clusters():
    # Three tight blobs; the labeled set sits on blob 0: picks must hit blobs 1 and 2 first.
    rng = np.random.default_rng(1)
    centers = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    x = np.concatenate([c + rng.normal(scale=0.1, size=(20, 2)) for c in centers]).astype(np.float32)
    init = min_sq_distances(x, iter([centers[:1]]))
    idx, score = kcenter_greedy(x, 2, rng, init)
    assert sorted(int(i) // 20 for i in idx) == [1, 2]
    assert score[0] >= score[1]
    cands = Candidates(np.arange(60), embeddings=x, labeled=lambda: iter([centers[:1]]), labeled_count=1)
    idx, _ = get_strategy("coreset").select(cands, 2, rng)
    assert sorted(int(i) // 20 for i in idx) == [1, 2]


def test_min_sq_distances_matches_brute_force():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(70, 4))
    brute = ((x[:, None, :] - y[None]) ** 2).sum(-1).min(1)
    got = min_sq_distances(x, iter([y[:30], y[30:]]), block=7)
    np.testing.assert_allclose(got, brute, rtol=1e-4, atol=1e-4)


def test_badge_first_pick_is_largest_gradient_and_spreads():
    rng = np.random.default_rng(3)
    p = np.tile([[0.9, 0.1]], (40, 1))
    p[:20] = [0.5, 0.5]  # the first half: identical, largest gradient norm
    emb = np.ones((40, 3))
    emb[20:] = -0.5  # the second half: smaller norm, far away
    idx, score = kmeanspp_gradient(p, emb, 2, rng)
    assert idx[0] == 0  # argmax of the norm, first of the ties
    assert idx[1] >= 20  # distance to the first half is exactly zero
    assert score[0] > score[1]


def test_round_robin_smallest_cluster_first():
    labels = np.array([0, 0, 0, 1, 1, 2])
    idx = round_robin(labels, np.arange(6), 4)
    assert idx.tolist() == [5, 3, 0, 4]


def test_cluster_margin_covers_clusters():
    rng = np.random.default_rng(4)
    emb = np.concatenate([np.zeros((10, 2)), np.full((10, 2), 50.0)]) + rng.normal(scale=0.01, size=(20, 2))
    p = np.tile([[0.6, 0.4]], (20, 1))
    p[:10, 0] = np.linspace(0.51, 0.6, 10)  # blob 0 has all the lowest margins
    p[:10, 1] = 1 - p[:10, 0]
    idx, _ = get_strategy("cluster_margin").select(_cands(p, emb), 2, rng)
    assert sorted(int(i) // 10 for i in idx) == [0, 1]


def test_typicality_prefers_dense_points():
    x = np.array([[0.0], [0.1], [0.2], [5.0]])
    t = typicality(x, knn=2)
    assert np.argmin(t) == 3 and np.argmax(t) == 1


def test_typiclust_skips_covered_cluster():
    rng = np.random.default_rng(5)
    blobs = [np.array(c, dtype=np.float32) + rng.normal(scale=0.1, size=(15, 2)) for c in ([0, 0], [20, 0], [0, 20])]
    emb = np.concatenate(blobs).astype(np.float32)
    cands = Candidates(np.arange(45), embeddings=emb, labeled=lambda: iter([np.array([[0, 0]], np.float32)]), labeled_count=1)
    idx, _ = get_strategy("typiclust").select(cands, 2, rng)
    assert sorted(int(i) // 15 for i in idx) == [1, 2]


def test_random_is_seeded():
    c = _cands()
    a, _ = get_strategy("random").select(c, 3, np.random.default_rng(9))
    b, _ = get_strategy("random").select(c, 3, np.random.default_rng(9))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 3
