"""Prediction drift: the population stability index (PSI) between class distributions.

After each inference the newest model's predicted class distribution (over the items
it scored) is compared with the previous model's, or, when the project has only one
model, with the distribution of its current labels. ``PSI = sum_k (p_k - q_k) *
ln(p_k / q_k)`` over the project's classes, each share floored at ``EPS`` so an
empty class does not divide by zero. PSI above ``threshold`` (0.2 by default, the
usual "significant shift" mark) writes an ``alerts`` row (kind ``drift``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, func, insert, select

from alsql.db import write_transaction
from alsql.schema import alerts, classes, model_versions, predictions
from alsql.schema.views import current_labels

__all__ = ["EPS", "DEFAULT_THRESHOLD", "DriftResult", "psi", "class_shares", "check_drift"]

EPS = 1e-4
DEFAULT_THRESHOLD = 0.2


def psi(p, q, eps: float = EPS) -> float:
    """PSI of two distributions ``p``, ``q`` ``(K,)`` (counts or shares; each normalised here)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"psi: expected two 1-D arrays of the same length, got {p.shape} and {q.shape}")
    p = np.maximum(p / max(p.sum(), 1e-12), eps)
    q = np.maximum(q / max(q.sum(), 1e-12), eps)
    return float(np.sum((p - q) * np.log(p / q)))


def class_shares(conn, project_id: int, model_id: int | None) -> tuple[np.ndarray, int]:
    """Counts per class id (index = position in the project's class order) and the total.

    ``model_id`` None: the current labels of the project; else the model's predictions.
    """
    ids = list(conn.execute(select(classes.c.class_id).where(classes.c.project_id == project_id)
                            .order_by(classes.c.class_id)).scalars())
    if model_id is None:
        q = select(current_labels.c.class_id, func.count()).where(current_labels.c.project_id == project_id) \
            .group_by(current_labels.c.class_id)
    else:
        q = select(predictions.c.class_id, func.count()).where(predictions.c.model_id == model_id) \
            .group_by(predictions.c.class_id)
    counts = dict(conn.execute(q).all())
    arr = np.array([counts.get(c, 0) for c in ids], dtype=np.float64)
    return arr, int(arr.sum())


@dataclass
class DriftResult:
    model_id: int
    against: str  # "model N" or "labels"
    psi: float | None
    alert_id: int | None = None

    def as_metrics(self) -> dict:
        return {"model_id": self.model_id, "against": self.against, "psi": self.psi, "alert_id": self.alert_id}


def check_drift(engine: Engine, project_id: int, model_id: int | None = None, *,
                threshold: float = DEFAULT_THRESHOLD, run_id: int | None = None) -> DriftResult | None:
    """Compare the model (default: newest) with the one before it (else the labels); alert above ``threshold``.

    Returns None when the project has no model or the model has no predictions yet.
    """
    mv = model_versions.c
    with engine.connect() as conn:
        if model_id is None:
            model_id = conn.execute(select(func.max(mv.model_id)).where(mv.project_id == project_id)).scalar()
        if model_id is None:
            return None
        new, n_new = class_shares(conn, project_id, model_id)
        if n_new == 0:
            return None
        prev = conn.execute(select(func.max(mv.model_id)).where(mv.project_id == project_id, mv.model_id < model_id)).scalar()
        old, n_old = class_shares(conn, project_id, prev) if prev is not None else (None, 0)
        against = f"model {prev}"
        if not n_old:
            old, n_old = class_shares(conn, project_id, None)
            against = "labels"
    if not n_old:
        return DriftResult(int(model_id), against, None)
    value = psi(new, old)
    result = DriftResult(int(model_id), against, round(value, 6))
    if value > threshold:
        with write_transaction(engine) as conn:
            result.alert_id = int(conn.execute(insert(alerts).values(
                project_id=project_id, model_id=model_id, run_id=run_id, kind="drift", value=value,
                message=(f"predicted class distribution of model {model_id} drifted from {against}: "
                         f"PSI {value:.3f} > {threshold:g}"),
            ).returning(alerts.c.alert_id)).scalar_one())
    return result
