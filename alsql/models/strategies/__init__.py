"""Active-learning strategies, looked up by name.

>>> from alsql.models.strategies import get_strategy, Candidates
>>> s = get_strategy("margin")
>>> idx, score = s.select(Candidates(item_ids, scores={"margin": m}), k, rng)

Names: random, least_confidence, margin, entropy, bald (scalar: one SQL query over
stored scores), coreset, badge, cluster_margin, typiclust (batch-aware: embeddings of
a bounded candidate set), and the rare-class seekers balanced_margin and class_balanced
(one SQL query per predicted class), rare_boost and similar (``rare``). See ``base`` for the
``select`` contract.

Active evaluation rounds (not a ranking: a draw with known inclusion probabilities)
use ``alsql.models.strategies.inclusion`` (``active_inclusion_probs``,
``draw_with_probs``).

``DEFAULT_STRATEGY`` is the strategy the demo and the watcher use when none is named: the best
measured rare-class seeker (``rare``'s table, ``benchmarks/rare_seeking.py``).
"""

from alsql.models.strategies import uncertainty  # noqa: F401, I001  (registers, in this order)
from alsql.models.strategies import diversity  # noqa: F401
from alsql.models.strategies import clustering  # noqa: F401
from alsql.models.strategies import rare  # noqa: F401
from alsql.models.strategies.base import (
    Candidates,
    Strategy,
    get_strategy,
    min_sq_distances,
    register,
    strategy_names,
    top_k,
)
from alsql.models.strategies.scores import bald, confidence, entropy, margin, score_columns

DEFAULT_STRATEGY = "balanced_margin"

__all__ = [
    "DEFAULT_STRATEGY",
    "Candidates",
    "Strategy",
    "get_strategy",
    "register",
    "strategy_names",
    "top_k",
    "min_sq_distances",
    "confidence",
    "margin",
    "entropy",
    "bald",
    "score_columns",
]
