"""Random and the scalar uncertainty strategies.

In the database, scalar strategies are one ``ORDER BY <column> LIMIT k`` query over
stored scores (see alsql.models.select). In memory (benchmarks, tests) ``select``
orders the same column the same way: ascending for confidence and margin,
descending for entropy and BALD, ties by item id. The reported score is
``1 - confidence``, ``1 - margin``, ``entropy`` and ``bald``: higher = more worth labeling.
"""

from __future__ import annotations

import numpy as np

from alsql.models.strategies.base import Candidates, Strategy, register, top_k

__all__ = ["random", "least_confidence", "margin", "entropy", "bald"]


def _random(cands: Candidates, k: int, rng: np.random.Generator):
    k = min(int(k), len(cands))
    idx = rng.permutation(len(cands))[:k].astype(np.int64)
    return idx, np.zeros(k)


def _scalar(column: str, descending: bool):
    def select(cands: Candidates, k: int, rng: np.random.Generator):
        values = cands.need(column, column).astype(np.float64)
        score = values if descending else 1.0 - values
        idx = top_k(score, k)
        return idx, score[idx]

    return select


random = register(Strategy("random", "random", _random, doc="seeded uniform sample"))
least_confidence = register(
    Strategy(
        "least_confidence", "scalar", _scalar("confidence", False), "confidence", False,
        doc="lowest top-class probability first",
    )
)
margin = register(
    Strategy(
        "margin", "scalar", _scalar("margin", False), "margin", False,
        doc="smallest gap between the two likeliest classes first",
    )
)
entropy = register(
    Strategy(
        "entropy", "scalar", _scalar("entropy", True), "entropy", True,
        doc="highest predictive entropy first",
    )
)
bald = register(
    Strategy(
        "bald", "scalar", _scalar("bald", True), "bald", True,
        doc="highest MC-dropout mutual information first (run `alsql infer --bald T`)",
    )
)
