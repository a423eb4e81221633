"""Evaluation rounds' draws: who is in the population, with which probability, which weight.

Random evaluation rounds (the default) draw ``K`` of the ``N`` selectable items
uniformly: each round item stores ``inclusion_prob = K / N`` and ``weight = 1``.

Active evaluation rounds (``--strategy active``, active statistical inference) draw
``K`` of the ``N`` selectable items that the model predicted, item ``i`` with
probability ``pi_i`` from the model's uncertainty about the estimand
(``alsql.models.strategies.inclusion``), and store ``inclusion_prob = pi_i`` and
``weight = (K / N) / pi_i``. The estimand is named by a mart (``--for``):

| mart | uncertainty ``u_i`` |
| --- | --- |
| (none) | ``1 - confidence`` (the predicted class is wrong) |
| maintenance_risk, defect_warranty | ``sqrt(p (1 - p))``, ``p`` = probability of the non-normal classes (``NORMAL_CLASSES``, the dbt var ``normal_classes``' default) |
| intersection_safety, business_events | ``sqrt(sum_c p_c (1 - p_c))`` (every class's share) |
| fairness_by_group, model_performance | ``sqrt(c (1 - c))``, ``c`` = confidence (accuracy) |

Memory: the pool's ids, scores and probabilities, 24 bytes per selectable predicted
item (the model's key range is streamed; class probabilities are reduced per chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, func, select

from alsql.errors import AlsqlError
from alsql.models.pool import selectable, unpack_vectors
from alsql.models.strategies.inclusion import (
    DEFAULT_FLOOR,
    active_inclusion_probs,
    draw_with_probs,
    inverse_probability_weights,
    uncertainty_for,
)
from alsql.schema import classes, items, predictions

__all__ = ["MART_TARGETS", "NORMAL_CLASSES", "Draw", "pool_size", "uniform_draw_columns", "active_draw"]

# Which uncertainty matters for each mart's estimand (None: no mart named).
MART_TARGETS = {
    None: "confidence",
    "maintenance_risk": "abnormal",
    "defect_warranty": "abnormal",
    "intersection_safety": "class_share",
    "business_events": "class_share",
    "fairness_by_group": "correct",
    "model_performance": "correct",
}
# The dbt var normal_classes' default: classes that mean "nothing wrong".
NORMAL_CLASSES = ("ok", "good", "normal", "no_defect")
_STREAM = 10_000


@dataclass
class Draw:
    """An evaluation draw: ``item_ids``, ``score`` (u_i), ``inclusion_prob``, ``weight``, all ``(K,)``
    in rank order, and ``population`` (N)."""

    item_ids: np.ndarray
    score: np.ndarray
    inclusion_prob: np.ndarray
    weight: np.ndarray
    population: int


def pool_size(conn: Connection, project_id: int) -> int:
    """N of a random evaluation round: the project's selectable items."""
    return int(conn.execute(
        select(func.count()).select_from(items).where(selectable(project_id, items.c.item_id))
    ).scalar_one())


def uniform_draw_columns(selected: int, population: int) -> tuple[float | None, float | None]:
    """``(inclusion_prob, weight)`` of each item of a uniform draw: ``(K / N, 1)``."""
    if population <= 0:
        return None, None
    return min(1.0, selected / population), 1.0


def _target(mart: str | None) -> str:
    if mart not in MART_TARGETS:
        names = ", ".join(m for m in MART_TARGETS if m)
        raise AlsqlError(f"--for {mart!r}: expected one of {names}")
    return MART_TARGETS[mart]


def _abnormal_mask(conn: Connection, project_id: int) -> np.ndarray:
    names = conn.execute(select(classes.c.name).where(classes.c.project_id == project_id)
                         .order_by(classes.c.class_id)).scalars().all()
    mask = np.array([n.lower() not in NORMAL_CLASSES for n in names], dtype=bool)
    if mask.all() or not mask.any():
        raise AlsqlError(
            f"--for: the project's classes ({', '.join(names)}) must hold a normal class "
            f"({', '.join(NORMAL_CLASSES)}) and another one")
    return mask


def _scores(conn: Connection, project_id: int, model_id: int, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Item ids and u_i of every selectable item the model predicted, in item id order."""
    need_probs = target in ("abnormal", "class_share")
    mask = _abnormal_mask(conn, project_id) if target == "abnormal" else None
    cols = [predictions.c.item_id, predictions.c.confidence] + ([predictions.c.probs] if need_probs else [])
    query = (select(*cols).where(predictions.c.model_id == model_id, selectable(project_id, predictions.c.item_id))
             .order_by(predictions.c.item_id))
    ids, scores = [], []
    result = conn.execution_options(yield_per=_STREAM).execute(query)
    for part in result.partitions():
        ids.append(np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part)))
        conf = np.fromiter((r[1] for r in part), dtype=np.float64, count=len(part))
        probs = None
        if need_probs:
            if any(r[2] is None for r in part):
                raise AlsqlError(f"--for: model {model_id} stored no class probabilities for some items; "
                                 f"run `alsql infer` again, or leave out --for")
            probs = unpack_vectors([r[2] for r in part])
            if mask is not None and probs.shape[1] != len(mask):
                raise AlsqlError(f"--for: model {model_id} has {probs.shape[1]} outputs, the project "
                                 f"{len(mask)} classes")
        scores.append(uncertainty_for(target, probs=probs, confidence=conf, abnormal=mask))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(ids), np.concatenate(scores)


def active_draw(conn: Connection, project_id: int, model_id: int, budget: int, seed: int,
                mart: str | None = None, floor: float = DEFAULT_FLOOR) -> Draw:
    """Draw ``budget`` selectable predicted items with probabilities from ``model_id``'s uncertainty."""
    target = _target(mart)
    ids, u = _scores(conn, project_id, model_id, target)
    n = len(ids)
    if n == 0:
        raise AlsqlError(f"--strategy active: model {model_id} predicted no selectable item of the project; "
                         f"run `alsql infer` first")
    pi = active_inclusion_probs(u, int(budget), floor)
    idx = draw_with_probs(pi, int(budget), seed)
    weights = inverse_probability_weights(pi[idx], int(budget), n)
    return Draw(ids[idx], u[idx], pi[idx], weights, n)
