"""Uncertainty scores from class probabilities: the scalars stored with each prediction.

Shapes: ``probs`` is ``(N, C)`` float (rows sum to 1); MC-dropout samples are
``(T, N, C)``. Every function returns ``(N,)`` float64. Computation is chunk-friendly:
each row is scored independently, so callers may score any slice of the pool.

Stored columns and their meaning (alsql.schema.predictions):
``confidence`` = max_c p, ``margin`` = p(1st) - p(2nd), ``entropy`` = -sum p log p
(nats), ``bald`` = mutual information between prediction and weights (nats).
"""

from __future__ import annotations

import numpy as np

__all__ = ["confidence", "margin", "entropy", "bald", "score_columns"]

_EPS = 1e-12


def _check(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"probs: expected an (N, C) array, got shape {p.shape}")
    return p


def confidence(probs: np.ndarray) -> np.ndarray:
    """Highest class probability per row, ``(N,)``; low = uncertain."""
    return _check(probs).max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row, ``(N,)`` in [0, 1]; low = uncertain."""
    p = _check(probs)
    if p.shape[1] == 1:
        return np.ones(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy per row in nats, ``(N,)``; high = uncertain."""
    p = _check(probs)
    return -(p * np.log(np.clip(p, _EPS, 1.0))).sum(axis=1)


def bald(samples: np.ndarray) -> np.ndarray:
    """BALD from MC-dropout samples ``(T, N, C)``: H[mean p] - mean H[p], ``(N,)`` >= 0."""
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3:
        raise ValueError(f"samples: expected a (T, N, C) array, got shape {s.shape}")
    mean = s.mean(axis=0)
    h_mean = entropy(mean)
    mean_h = np.stack([entropy(t) for t in s]).mean(axis=0)
    return np.maximum(h_mean - mean_h, 0.0)


def score_columns(probs: np.ndarray) -> dict[str, np.ndarray]:
    """The stored scalar columns for ``probs`` ``(N, C)``: class_id, confidence, margin, entropy."""
    p = _check(probs)
    return {
        "class_id": p.argmax(axis=1).astype(np.int64),
        "confidence": confidence(p),
        "margin": margin(p),
        "entropy": entropy(p),
    }
