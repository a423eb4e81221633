"""What is in the database: items by status, labels per class, models, rounds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, case, func, select

from alsql.catalog import get_project
from alsql.scope import read_scope
from alsql.schema import (
    classes,
    current_labels,
    items,
    model_versions,
    projects,
    round_items,
    rounds,
)

__all__ = ["status_summary"]


def status_summary(engine: Engine, project: str | int | None = None) -> dict[str, Any]:
    """A plain dict (JSON-able) of counts; per project when ``project`` is given or for all."""
    with engine.connect() as conn:
        # One pass of conditional sums (flat memory), not a GROUP BY that sorts every row of items.
        states = ("ok", "corrupt", "missing")
        counts = conn.execute(select(*(func.coalesce(func.sum(case((items.c.status == s, 1), else_=0)), 0)
                                       for s in states))).one()
        out: dict[str, Any] = {
            "items": {s: int(c) for s, c in zip(states, counts)},
            "projects": [],
        }
        if project is not None:
            pids = [get_project(conn, project).project_id]
        else:
            pids = list(conn.execute(select(projects.c.project_id).order_by(projects.c.project_id)).scalars())
        for pid in pids:
            proj = get_project(conn, pid)
            per_class = dict(
                conn.execute(
                    select(classes.c.name, func.count(current_labels.c.item_id))
                    .select_from(
                        classes.outerjoin(
                            current_labels,
                            (current_labels.c.project_id == classes.c.project_id)
                            & (current_labels.c.class_id == classes.c.class_id),
                        )
                    )
                    .where(classes.c.project_id == pid)
                    .group_by(classes.c.name, classes.c.class_id)
                    .order_by(classes.c.class_id)
                ).all()
            )
            models = [
                {
                    "model_id": r.model_id,
                    "architecture": r.architecture,
                    "label_count": r.label_count,
                    "accuracy": (r.metrics or {}).get("accuracy") if isinstance(r.metrics, dict) else None,
                    **{k: (r.metrics or {}).get(k) if isinstance(r.metrics, dict) else None
                       for k in ("balanced_accuracy", "macro_f1", "per_class_recall")},
                    "created_at": r.created_at.isoformat() if r.created_at else None,
                }
                for r in conn.execute(
                    select(model_versions).where(model_versions.c.project_id == pid).order_by(model_versions.c.model_id)
                )
            ]
            pending = (
                select(round_items.c.round_id, func.count().label("n"))
                .where(round_items.c.status == "pending")
                .group_by(round_items.c.round_id)
                .subquery()
            )
            rnds = [
                {
                    "round_id": r.round_id,
                    "strategy": r.strategy,
                    "purpose": r.purpose,
                    "budget": r.budget,
                    "pending": r.n or 0,
                    "status": r.status,
                }
                for r in conn.execute(
                    select(rounds, pending.c.n)
                    .select_from(rounds.outerjoin(pending, pending.c.round_id == rounds.c.round_id))
                    .where(rounds.c.project_id == pid)
                    .order_by(rounds.c.round_id)
                )
            ]
            out["projects"].append(
                {
                    "project": proj.name,
                    "labels": sum(per_class.values()),
                    "labels_per_class": per_class,
                    "models": models,
                    "rounds": rnds,
                    "scope": read_scope(conn, pid).as_dict(),
                }
            )
    return out
