"""Batch strategies far from the origin: picks identical to a float64 brute-force reference.

Embeddings that sit at an offset (here 200 in every dimension) are common (ReLU
features are all positive). Distances computed as ``|x|^2 + |y|^2 - 2 x.y`` in float32
lose the differences there; the strategies must pick exactly what a float64
computation over explicit differences picks.
"""

from __future__ import annotations

import numpy as np
import pytest

from alsql.models.strategies import Candidates, get_strategy, min_sq_distances, score_columns
from alsql.models.strategies.clustering import typicality
from alsql.models.strategies.diversity import kcenter_greedy, kmeanspp_gradient

OFFSET = 200.0


def _embeddings(m: int = 400, d: int = 16, seed: int = 0, offset: float = OFFSET) -> np.ndarray:
    """Float32 embeddings whose spread (about 1) is tiny next to their distance from the origin."""
    rng = np.random.default_rng(seed)
    return (offset + rng.normal(size=(m, d))).astype(np.float32)


def _reference_kcenter(x: np.ndarray, k: int, init_sq: np.ndarray) -> list[int]:
    """k-center greedy over explicit float64 differences (no identity, no float32)."""
    x = np.asarray(x, dtype=np.float64)
    dist = init_sq.astype(np.float64).copy()
    picked = []
    for _ in range(k):
        j = int(np.argmax(dist))
        picked.append(j)
        np.minimum(dist, ((x - x[j]) ** 2).sum(axis=1), out=dist)
        dist[j] = -1.0
    return picked


def _reference_min_sq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return ((x[:, None, :] - y[None]) ** 2).sum(-1).min(1)


def test_min_sq_distances_far_from_origin():
    x, labeled = _embeddings(300, seed=1), _embeddings(50, seed=2)
    got = min_sq_distances(x, iter([labeled[:20], labeled[20:]]), block=16)
    np.testing.assert_allclose(got, _reference_min_sq(x, labeled), rtol=1e-9, atol=1e-9)


def test_coreset_picks_match_float64_reference_at_offset_200():
    x, labeled = _embeddings(400, seed=3), _embeddings(20, seed=4)
    k = 60
    ref = _reference_kcenter(x, k, _reference_min_sq(x, labeled))
    idx, score = kcenter_greedy(x, k, np.random.default_rng(0), min_sq_distances(x, iter([labeled])))
    assert idx.tolist() == ref  # all 60 identical (float32 |x|^2+|y|^2-2xy got 21 wrong)
    assert np.all(np.diff(score) <= 1e-9)  # the greedy pick distance never grows
    cands = Candidates(np.arange(len(x)), embeddings=x, labeled=lambda: iter([labeled]), labeled_count=len(labeled))
    idx2, _ = get_strategy("coreset").select(cands, k, np.random.default_rng(0))
    assert idx2.tolist() == ref


def _reference_badge(p: np.ndarray, e: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """k-means++ seeding over explicit float64 gradient embeddings ``(M, C*D)``."""
    p, e = np.asarray(p, np.float64), np.asarray(e, np.float64)
    a = p.copy()
    a[np.arange(len(p)), p.argmax(1)] -= 1.0
    g = (a[:, :, None] * e[:, None, :]).reshape(len(p), -1)
    dist = np.full(len(p), np.inf)
    chosen = np.zeros(len(p), bool)
    picked = []
    for i in range(k):
        if i == 0:
            j = int(np.argmax((g * g).sum(1)))
        else:
            w = np.where(chosen, 0.0, dist)
            j = int(rng.choice(len(p), p=w / w.sum()))
        picked.append(j)
        chosen[j] = True
        np.minimum(dist, ((g - g[j]) ** 2).sum(1), out=dist)
    return picked


def test_badge_picks_match_float64_reference_at_offset_200():
    m, c = 300, 4
    e = _embeddings(m, d=8, seed=5)
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(m, c)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = _reference_badge(p, e, 40, np.random.default_rng(7))
    idx, _ = kmeanspp_gradient(p, e, 40, np.random.default_rng(7))
    assert idx.tolist() == ref


def test_typicality_is_translation_invariant():
    x = _embeddings(200, d=8, seed=8, offset=0.0).astype(np.float64)
    np.testing.assert_allclose(typicality(x + OFFSET), typicality(x), rtol=1e-6)


@pytest.mark.parametrize("name", ["cluster_margin", "typiclust"])
def test_cluster_strategies_pick_the_same_far_from_origin(name):
    """Values on a 1/1024 grid: adding 200 is exact in float32, so any difference is the method's."""
    rng = np.random.default_rng(9)
    near = (np.round(rng.normal(size=(300, 8)) * 1024) / 1024).astype(np.float32)
    far = (near + np.float32(OFFSET)).astype(np.float32)
    assert np.array_equal(far - np.float32(OFFSET), near)
    logits = rng.normal(size=(300, 3))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = {k: v for k, v in score_columns(p).items() if k != "class_id"}
    lab_near = near[:10] + np.float32(0.5)

    def pick(emb, lab):
        cands = Candidates(np.arange(300), p, emb, scores, labeled=lambda: iter([lab]), labeled_count=10)
        return get_strategy(name).select(cands, 20, np.random.default_rng(10))[0].tolist()

    assert pick(far, lab_near + np.float32(OFFSET)) == pick(near, lab_near)
