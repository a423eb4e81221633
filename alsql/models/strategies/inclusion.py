"""Inclusion probabilities for active evaluation rounds, and a draw that honours them.

Pure numpy; ``alsql select --purpose evaluation --strategy active`` and
``benchmarks/inference.py`` share these functions::

    from alsql.models.strategies.inclusion import (
        active_inclusion_probs, draw_with_probs, uncertainty_for, inverse_probability_weights)

Active statistical inference (Zrnic & Candès, ICML 2024) labels the items where the
model is least sure more often, and stays unbiased by weighting each label by the
inverse of its inclusion probability. Here:

- ``uncertainty_for(target, probs=..., confidence=...)``: the score ``u_i`` of one
  item, an estimate of the root of the model's expected squared error for the
  estimand (``sqrt(p (1 - p))`` for a 0/1 outcome of predicted probability ``p``).
- ``active_inclusion_probs(u, K, floor)``: ``pi_i = K ((1 - floor) u_i / sum u +
  floor / N)``, capped at 1 (the excess of capped items is given to the others in
  proportion, so ``sum pi = K`` exactly for ``K <= N``; every ``pi_i >= min(1,
  floor K / N)``: no item has probability 0).
- ``draw_with_probs(pi, K, seed)``: systematic PPS sampling over a seeded random
  order of the items: ``K`` distinct items, item ``i`` drawn with probability
  exactly ``pi_i`` (Madow's method; the random order makes pairwise inclusion
  probabilities positive for most pairs). Seeded: the same ``(pi, K, seed)`` draws
  the same items in the same order.
- ``inverse_probability_weights(pi, K, N)``: ``(K / N) / pi_i``, what
  ``round_items.weight`` stores (1 for a uniform draw).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_FLOOR",
    "UNCERTAINTY_TARGETS",
    "active_inclusion_probs",
    "draw_with_probs",
    "inverse_probability_weights",
    "uncertainty_for",
]

DEFAULT_FLOOR = 0.2
# What the uncertainty is about:
# - "confidence": the predicted class is wrong: 1 - confidence (the default);
# - "correct": accuracy (a 0/1 outcome, p = confidence): sqrt(c (1 - c));
# - "abnormal": share of items whose true class is not a normal one (p = the
#   probability mass of the non-normal classes): sqrt(p (1 - p));
# - "class_share": the share of every class: sqrt(sum_c p_c (1 - p_c)).
UNCERTAINTY_TARGETS = ("confidence", "correct", "abnormal", "class_share")


def uncertainty_for(target: str, *, probs: np.ndarray | None = None, confidence: np.ndarray | None = None,
                    abnormal: np.ndarray | None = None) -> np.ndarray:
    """Uncertainty scores ``(N,)`` float64, each >= 0, for ``target`` (see UNCERTAINTY_TARGETS).

    ``probs``: ``(N, C)`` class probabilities (needed by abnormal and class_share);
    ``confidence``: ``(N,)`` the top probability (needed by confidence and correct);
    ``abnormal``: ``(C,)`` bool, the classes that are not normal (needed by abnormal).
    """
    if target not in UNCERTAINTY_TARGETS:
        raise ValueError(f"uncertainty target {target!r}: expected one of {', '.join(UNCERTAINTY_TARGETS)}")
    if target in ("confidence", "correct"):
        if confidence is None:
            raise ValueError(f"uncertainty target {target!r}: needs the confidence of each item")
        c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
        return 1.0 - c if target == "confidence" else np.sqrt(c * (1.0 - c))
    if probs is None:
        raise ValueError(f"uncertainty target {target!r}: needs the class probabilities of each item")
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    if p.ndim != 2:
        raise ValueError(f"probs: expected shape (N, C), got {p.shape}")
    if target == "class_share":
        return np.sqrt(np.clip((p * (1.0 - p)).sum(axis=1), 0.0, None))
    mask = np.asarray(abnormal, dtype=bool) if abnormal is not None else None
    if mask is None or mask.shape != (p.shape[1],):
        raise ValueError(f"uncertainty target 'abnormal': expected a (C,) = ({p.shape[1]},) mask of abnormal classes")
    q = np.clip(p[:, mask].sum(axis=1), 0.0, 1.0)
    return np.sqrt(q * (1.0 - q))


def active_inclusion_probs(uncertainty, budget: int, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Inclusion probabilities ``(N,)`` float64 in ``(0, 1]`` for a draw of ``budget`` items.

    ``pi_i = K ((1 - floor) u_i / sum u + floor / N)``, then every ``pi_i > 1`` is set to
    1 and the rest rescaled to sum ``K - #capped``, until none exceeds 1. Sum: ``K``
    (``N`` when ``K >= N``: every item is drawn). When every ``u_i`` is 0 the draw is
    uniform (``K / N``). Raises ValueError for a negative or non-finite score, a
    budget below 1 or a floor outside (0, 1].
    """
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    n = len(u)
    if not np.all(np.isfinite(u)) or np.any(u < 0):
        raise ValueError("uncertainty: expected finite scores >= 0 for every item")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget {budget!r}: expected an integer >= 1")
    if not 0.0 < float(floor) <= 1.0:
        raise ValueError(f"floor {floor!r}: expected a share in (0, 1] (the uniform part, so no item has probability 0)")
    if n == 0:
        return np.zeros(0)
    k = int(budget)
    if k >= n:
        return np.ones(n)
    total = u.sum()
    share = u / total if total > 0 else np.full(n, 1.0 / n)
    pi = k * ((1.0 - floor) * share + floor / n)
    capped = np.zeros(n, dtype=bool)
    for _ in range(n):  # each pass caps at least one more item, or stops
        over = (pi > 1.0) & ~capped
        if not over.any():
            break
        capped |= over
        pi[capped] = 1.0
        free = ~capped
        pi[free] *= (k - capped.sum()) / pi[free].sum()
    return np.minimum(pi, 1.0)


def draw_with_probs(probs, budget: int, seed: int) -> np.ndarray:
    """Indices ``(K,)`` int64 of a draw without replacement with inclusion probabilities ``probs``.

    Systematic PPS sampling over a seeded random permutation: the items are laid end to
    end in the permuted order, each an interval of length ``pi_i`` (scaled so the total is
    ``budget``), and the points ``r, r + 1, ..., r + K - 1`` (``r`` uniform in [0, 1))
    pick the intervals they fall in. An item with ``pi_i <= 1`` holds at most one point,
    so the ``K = min(budget, N)`` indices are distinct; each is drawn with probability
    ``pi_i``. ``probs`` must sum to ``K`` (as ``active_inclusion_probs`` gives; ValueError
    otherwise). Returned in a seeded random order (the round's rank order), so a round
    labeled only in part is still a random part of the draw.
    """
    pi = np.asarray(probs, dtype=np.float64).reshape(-1)
    n = len(pi)
    if not np.all(np.isfinite(pi)) or np.any(pi < 0) or np.any(pi > 1.0 + 1e-9):
        raise ValueError("probs: expected inclusion probabilities in [0, 1]")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget {budget!r}: expected an integer >= 1")
    k = min(int(budget), n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if abs(pi.sum() - k) > 1e-6 * k:
        raise ValueError(f"probs sum to {pi.sum():.6g}: expected the budget {k} (as active_inclusion_probs gives)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    lengths = np.minimum(pi[order], 1.0)
    cum = np.cumsum(lengths)
    cum *= k / cum[-1]  # rounding: the intervals cover exactly [0, k)
    points = rng.random() + np.arange(k)
    pos = np.searchsorted(cum, points, side="right")
    pos = np.unique(np.minimum(pos, n - 1))
    picked = order[pos]
    return picked[rng.permutation(len(picked))].astype(np.int64)


def inverse_probability_weights(probs, budget: int, population: int) -> np.ndarray:
    """``(K / N) / pi_i`` per item: the weight an active evaluation round stores (uniform: 1)."""
    pi = np.asarray(probs, dtype=np.float64)
    if np.any(pi <= 0):
        raise ValueError("probs: expected inclusion probabilities > 0 (a weight is 1 / pi)")
    return (min(int(budget), int(population)) / float(population)) / pi
