"""Strategy objects, the candidate set they read, and the registry that names them.

A strategy is looked up by name (``get_strategy("margin")``) and has one of three kinds:

- ``random``: a seeded uniform sample (the baseline every benchmark reports against).
- ``scalar``: ranks by one stored column of ``predictions`` (``column``, ``descending``).
  In the database this is one ``ORDER BY column, item_id LIMIT k`` query over the
  model's key range of ``predictions`` (a top-k sort; no score index); in memory
  ``select`` does the same ordering.
- ``batch``: reads a bounded candidate set (``Candidates``) and picks a diverse batch.
- ``per_class``: ranks by ``column`` within each predicted class; in the database one
  ``ORDER BY column LIMIT k`` query per class gives the candidates (at most ``C * k``),
  and ``select`` splits the budget across the classes (``alsql.models.strategies.rare``).

Scoring is separate from selection: scalar scores are computed once at inference
(``alsql.models.strategies.scores``) and stored; ``select`` only ranks.

Every ``select(cands, k, rng)`` returns ``(index, score)``: ``index`` ``(k',)`` int64
positions into ``cands.item_ids`` in rank order (rank 0 first, no repeats,
``k' = min(k, M)``), ``score`` ``(k',)`` float64 where higher means "more worth
labeling" for that strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from alsql.errors import AlsqlError

__all__ = [
    "Candidates",
    "Strategy",
    "register",
    "get_strategy",
    "strategy_names",
    "top_k",
    "min_sq_distances",
    "centred",
]


@dataclass
class Candidates:
    """What a strategy sees about the ``M`` unlabeled candidates.

    - ``item_ids``: ``(M,)`` int64, ascending (the tie-break order).
    - ``probs``: ``(M, C)`` float32 class probabilities, or None.
    - ``embeddings``: ``(M, D)`` float32 penultimate-layer vectors, or None.
    - ``scores``: stored scalar columns, each ``(M,)`` (confidence, margin, entropy, bald).
    - ``labeled``: a factory of chunks ``(L_i, D)`` of the labeled items' embeddings
      (read lazily, in bounded memory), or None when nothing is labeled.
    - ``labeled_count``: how many items are labeled (for TypiClust's cluster count).
    - ``labeled_counts``: ``(C,)`` training labels per class, or None (which classes are rare).
    - ``labeled_by_class``: given class ids, a factory of chunks ``(L_i, D)`` of the
      embeddings of the labeled items of those classes, or None.
    """

    item_ids: np.ndarray
    probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    labeled: Callable[[], Iterator[np.ndarray]] | None = None
    labeled_count: int = 0
    labeled_counts: np.ndarray | None = None
    labeled_by_class: Callable[[list[int]], Iterator[np.ndarray]] | None = None

    def __len__(self) -> int:
        return int(len(self.item_ids))

    def need(self, what: str, strategy: str) -> np.ndarray:
        value = getattr(self, what) if what in ("probs", "embeddings") else self.scores.get(what)
        if value is None:
            raise AlsqlError(
                f"strategy {strategy!r} needs {what} of the candidates; run `alsql infer` "
                f"for the model first"
            )
        return np.asarray(value)


Selector = Callable[[Candidates, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Strategy:
    """A named strategy. See the module docstring for the ``select`` contract."""

    name: str
    kind: str  # "random" | "scalar" | "batch" | "per_class"
    select: Selector
    column: str | None = None  # scalar, per_class: the stored predictions column it ranks by
    descending: bool = True  # scalar: True when a higher column value is more informative
    prefilter: str | None = None  # batch: the scalar strategy pre-filtering candidates, or None (random sample)
    needs: tuple[str, ...] = ()  # batch: "probs", "embeddings", "labeled", "counts", "labeled_by_class"
    doc: str = ""


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    _REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; AlsqlError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AlsqlError(
            f"strategy {name!r} is unknown; expected one of: {', '.join(strategy_names())}"
        ) from None


def strategy_names() -> list[str]:
    return list(_REGISTRY)


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, highest first; ties keep input order."""
    score = np.asarray(score, dtype=np.float64)
    k = max(0, min(int(k), score.shape[0]))
    order = np.argsort(-score, kind="stable")
    return order[:k].astype(np.int64)


def min_sq_distances(x: np.ndarray, chunks: Iterator[np.ndarray], block: int = 256) -> np.ndarray:
    """For each row of ``x`` ``(M, D)``: the squared distance to its nearest row in ``chunks``.

    ``chunks`` yields ``(L_i, D)`` arrays; memory stays at ``M * block`` floats.
    Returns ``(M,)`` float64 (``inf`` when ``chunks`` is empty).

    Both sides are centred on the mean of ``x`` and the distances computed in float64:
    embeddings far from the origin (all-positive ReLU features) would otherwise lose
    their differences in ``|x|^2 + |y|^2 - 2 x.y``.
    """
    x, mean = centred(x)
    best = np.full(x.shape[0], np.inf, dtype=np.float64)
    xx = (x * x).sum(axis=1)
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64) - mean
        for s in range(0, chunk.shape[0], block):
            c = chunk[s : s + block]
            d = xx[:, None] + (c * c).sum(axis=1)[None, :] - 2.0 * (x @ c.T)
            np.minimum(best, np.maximum(d.min(axis=1), 0.0), out=best)
    return best


def centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x - mean, mean)`` in float64 for ``x`` ``(M, D)``: distances keep their precision."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(x.shape[1:], dtype=np.float64)
    return x - mean, mean
