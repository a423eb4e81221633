"""Cluster-based batch strategies: Cluster-Margin and TypiClust (cold start).

- ``cluster_margin`` (Citovsky et al. 2021): take the ``10 k`` lowest-margin
  candidates, cluster their embeddings, then pick round-robin across clusters,
  smallest cluster first, lowest margin first within a cluster.
- ``typiclust`` (Hacohen et al. 2022): cluster candidates and labeled embeddings
  into ``labeled + k`` clusters; from the largest clusters holding no labeled item,
  pick the most typical candidate (highest inverse mean distance to its nearest
  neighbours in the cluster). Needs no predictions, so it suits the cold start.

Clustering is k-means on at most ``M`` candidates (bounded by the caller's
pre-filter), so memory is ``O(M * D)``. Embeddings are centred on their mean before
clustering and before typicality distances, so points far from the origin keep their
differences.
"""

from __future__ import annotations

import warnings

import numpy as np

from alsql.models.strategies.base import Candidates, Strategy, centred, register

__all__ = ["round_robin", "typicality", "cluster_margin", "typiclust"]

_MARGIN_FACTOR = 10
_KNN = 20
_MAX_CLUSTERS = 500


def _kmeans(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    from sklearn.cluster import KMeans  # here: every other strategy (and `alsql select`) starts without it
    from sklearn.exceptions import ConvergenceWarning

    n = max(1, min(int(n), x.shape[0]))
    if n == 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    km = KMeans(n_clusters=n, n_init=1, max_iter=50, random_state=int(rng.integers(2**31 - 1)))
    with warnings.catch_warnings():  # duplicate points: fewer distinct clusters is fine
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Centred first (in float64): float32 distances far from the origin lose the differences.
        return km.fit_predict(centred(x)[0].astype(np.float32)).astype(np.int64)


def round_robin(labels: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """Positions picked round-robin over clusters, smallest cluster first.

    ``labels`` ``(M,)`` cluster ids; ``order`` ``(M,)`` positions in preference order
    (within each cluster the earliest in ``order`` goes first). Returns ``(min(k, M),)``.
    """
    queues: dict[int, list[int]] = {}
    for pos in order:
        queues.setdefault(int(labels[pos]), []).append(int(pos))
    clusters = sorted(queues, key=lambda c: (len(queues[c]), c))
    picked: list[int] = []
    depth = 0
    k = min(int(k), len(labels))
    while len(picked) < k:
        for c in clusters:
            if depth < len(queues[c]):
                picked.append(queues[c][depth])
                if len(picked) == k:
                    break
        depth += 1
    return np.asarray(picked, dtype=np.int64)


def _cluster_margin(cands: Candidates, k: int, rng: np.random.Generator):
    margin = cands.need("margin", "cluster_margin").astype(np.float64)
    emb = cands.need("embeddings", "cluster_margin")
    k = min(int(k), len(cands))
    order = np.argsort(margin, kind="stable")[: max(k, _MARGIN_FACTOR * k)]
    labels = _kmeans(emb[order], min(k, _MAX_CLUSTERS), rng)
    full = np.full(len(cands), -1, dtype=np.int64)
    full[order] = labels
    idx = round_robin(full[order], np.arange(len(order)), k)
    idx = order[idx]
    return idx, 1.0 - margin[idx]


def typicality(x: np.ndarray, knn: int = _KNN) -> np.ndarray:
    """Inverse mean distance to the ``knn`` nearest other rows of ``x`` ``(n, D)``, ``(n,)``."""
    x, _ = centred(x)  # float64, mean 0: the identity below keeps its precision
    n = x.shape[0]
    if n <= 1:
        return np.ones(n)
    kk = min(knn, n - 1)
    out = np.empty(n)
    xx = (x * x).sum(axis=1)
    for s in range(0, n, 1024):
        d = xx[s : s + 1024, None] + xx[None, :] - 2.0 * x[s : s + 1024] @ x.T
        d = np.sqrt(np.maximum(d, 0.0))
        near = np.partition(d, kk, axis=1)[:, 1 : kk + 1]  # column 0 is the row itself
        out[s : s + 1024] = 1.0 / (near.mean(axis=1) + 1e-12)
    return out


def _typiclust(cands: Candidates, k: int, rng: np.random.Generator):
    emb = np.asarray(cands.need("embeddings", "typiclust"), dtype=np.float32)
    m = emb.shape[0]
    k = min(int(k), m)
    labeled = []
    if cands.labeled is not None:
        budget = m  # a bounded sample of the labeled set marks covered clusters
        for chunk in cands.labeled():
            labeled.append(np.asarray(chunk, dtype=np.float32)[:budget])
            budget -= len(labeled[-1])
            if budget <= 0:
                break
    lab = np.concatenate(labeled) if labeled else np.zeros((0, emb.shape[1]), np.float32)
    x = np.concatenate([emb, lab])
    n_clusters = min(cands.labeled_count + k, _MAX_CLUSTERS, x.shape[0])
    labels = _kmeans(x, n_clusters, rng)
    cand_labels, covered = labels[:m], set(labels[m:].tolist())
    sizes = np.bincount(labels, minlength=n_clusters)
    typ = np.zeros(m)
    for c in np.unique(cand_labels):
        members = np.flatnonzero(cand_labels == c)
        typ[members] = typicality(emb[members])
    # Uncovered clusters by size, largest first; then covered ones, for when k exceeds them.
    clusters = sorted(np.unique(cand_labels).tolist(), key=lambda c: (c in covered, -sizes[c], c))
    picked: list[int] = []
    taken = np.zeros(m, dtype=bool)
    while len(picked) < k:
        for c in clusters:
            members = np.flatnonzero((cand_labels == c) & ~taken)
            if members.size:
                j = int(members[np.argmax(typ[members])])
                picked.append(j)
                taken[j] = True
                if len(picked) == k:
                    break
    idx = np.asarray(picked, dtype=np.int64)
    return idx, typ[idx]


cluster_margin = register(
    Strategy(
        "cluster_margin", "batch", _cluster_margin, prefilter="margin",
        needs=("embeddings",), doc="lowest margins, spread round-robin over clusters",
    )
)
typiclust = register(
    Strategy(
        "typiclust", "batch", _typiclust, needs=("embeddings", "labeled"),
        doc="most typical item of each uncovered cluster (cold start)",
    )
)
