"""Batch-aware strategies on embeddings: core-set (k-center greedy) and BADGE.

Both work on a bounded candidate set (``Candidates``, ``M`` rows) and never
materialise an ``(M, M)`` matrix: k-center keeps one ``(M,)`` distance vector, and
BADGE's k-means++ seeding computes distances to gradient embeddings
``g_i = (p_i - onehot(argmax p_i)) (x) e_i`` through the identity
``<g_i, g_j> = <a_i, a_j> <e_i, e_j>``, so the ``(M, C*D)`` matrix is never built.

Precision: embeddings often sit far from the origin (all-positive features), where
``|x|^2 + |y|^2 - 2 x.y`` in float32 loses the differences. Distances here are computed
in float64 on embeddings centred on their mean (k-center), and BADGE splits each
embedding into mean + centred part so no large terms cancel.

Threads: both greedy loops are ``k`` matrix-vector products over ``(M, D)``; BLAS runs
them on one thread (``threadpoolctl``, a scikit-learn dependency). Several BLAS threads
buy nothing at this size and, on a machine shared with other work, cost a 10x-30x slowdown.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from alsql.models.strategies.base import Candidates, Strategy, centred, min_sq_distances, register

__all__ = ["kcenter_greedy", "kmeanspp_gradient", "coreset", "badge"]


@threadpool_limits.wrap(limits=1, user_api="blas")
def kcenter_greedy(
    x: np.ndarray, k: int, rng: np.random.Generator, init_sq_dist: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center over ``x`` ``(M, D)``.

    ``init_sq_dist`` ``(M,)``: squared distance of each row to the existing centers
    (the labeled set), or None to start from a random row. Each step takes the row
    farthest from all centers. Returns ``(index (k,), distance at pick time (k,))``.
    """
    x, _ = centred(x)  # float64, mean 0: the identity below keeps its precision
    m = x.shape[0]
    k = min(int(k), m)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    xx = (x * x).sum(axis=1)
    if init_sq_dist is None or not np.isfinite(init_sq_dist).any():
        dist = np.full(m, np.inf)
    else:
        dist = np.asarray(init_sq_dist, dtype=np.float64).copy()
    picked = np.zeros(k, dtype=np.int64)
    score = np.zeros(k)
    for i in range(k):
        if np.isinf(dist).all():
            j = int(rng.integers(m))
            score[i] = np.inf
        else:
            j = int(np.argmax(dist))
            score[i] = float(np.sqrt(max(dist[j], 0.0)))
        picked[i] = j
        d = xx + xx[j] - 2.0 * (x @ x[j])
        np.minimum(dist, np.maximum(d, 0.0), out=dist)
        dist[j] = -1.0  # never again
    finite = np.isfinite(score)
    score[~finite] = score[finite].max() if finite.any() else 0.0  # the random first center
    return picked, score


def _coreset(cands: Candidates, k: int, rng: np.random.Generator):
    emb = cands.need("embeddings", "coreset")
    init = min_sq_distances(emb, cands.labeled()) if cands.labeled is not None else None
    return kcenter_greedy(emb, k, rng, init)


@threadpool_limits.wrap(limits=1, user_api="blas")
def kmeanspp_gradient(
    probs: np.ndarray, emb: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding on BADGE gradient embeddings of ``probs`` ``(M, C)``, ``emb`` ``(M, D)``.

    The first pick is the largest gradient norm (as in the BADGE reference code);
    each next pick is drawn with probability proportional to the squared distance
    to the nearest pick. Returns ``(index (k,), gradient norm (k,))``.
    """
    p = np.asarray(probs, dtype=np.float64)
    e = np.asarray(emb, dtype=np.float64)
    m = p.shape[0]
    k = min(int(k), m)
    a = p.copy()
    a[np.arange(m), p.argmax(axis=1)] -= 1.0  # d loss / d logits at the predicted label
    na = (a * a).sum(axis=1)
    ne = (e * e).sum(axis=1)
    norm2 = na * ne
    # e_i = mu + c_i, so g_i - g_j = (a_i - a_j) (x) mu + (a_i (x) c_i - a_j (x) c_j): every
    # term below is of the size of the differences, none cancels a large one.
    c, mu = centred(e)
    nc = (c * c).sum(axis=1)
    cmu = c @ mu
    mu2 = float(mu @ mu)
    picked: list[int] = []
    dist = np.full(m, np.inf)
    chosen = np.zeros(m, dtype=bool)
    for i in range(k):
        if i == 0:
            j = int(np.argmax(norm2))
        else:
            w = np.where(chosen, 0.0, np.maximum(dist, 0.0))
            total = w.sum()
            if total <= 0 or not np.isfinite(total):
                j = int(rng.choice(np.flatnonzero(~chosen)))
            else:
                j = int(rng.choice(m, p=w / total))
        picked.append(j)
        chosen[j] = True
        aa = a @ a[j]
        da2 = ((a - a[j]) ** 2).sum(axis=1)
        mixed = 2.0 * ((na - aa) * cmu - (aa - na[j]) * cmu[j])
        own = na * nc + na[j] * nc[j] - 2.0 * aa * (c @ c[j])
        d = da2 * mu2 + mixed + own
        np.minimum(dist, np.maximum(d, 0.0), out=dist)
    idx = np.asarray(picked, dtype=np.int64)
    return idx, np.sqrt(norm2[idx])


def _badge(cands: Candidates, k: int, rng: np.random.Generator):
    return kmeanspp_gradient(
        cands.need("probs", "badge"), cands.need("embeddings", "badge"), k, rng
    )


coreset = register(
    Strategy(
        "coreset", "batch", _coreset, needs=("embeddings", "labeled"),
        doc="k-center greedy on embeddings: farthest from everything labeled",
    )
)
badge = register(
    Strategy(
        "badge", "batch", _badge, needs=("probs", "embeddings"),
        doc="k-means++ on gradient embeddings (uncertain and diverse)",
    )
)
