"""What the pages show, read with index-driven queries.

- ``item_view``: one item with the latest model's guess and the project's label
  history for it (the ``annotations`` clustered key range of the item).
- ``progress``: labels per class, per day and over time (``alsql.web.progressdata``: per
  hour on a project's first days), accuracy, error and recall per class per model version (from
  ``model_versions.metrics``; ``accuracy_text`` says "no evaluation labels yet"
  when the model had no evaluation set, never 0.0%), evaluation coverage (items
  labeled in the evaluation rounds / their size), the analyst's answer from the answer marts
  (``progressdata.answer``), open rounds, failed runs and drift alerts.
- ``evaluation_coverage``: that coverage alone (the admin page shows it per project).
- ``map_points``: up to ``limit`` points of the latest model's 2-D embedding as
  columns (``item_id``, ``x``, ``y``, ``label`` (-1 = not labeled), ``predicted``,
  ``confidence``); three range scans on clustered keys, no per-point query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Date, bindparam, cast, func, select

from alsql.annotate import label_of_record
from alsql.catalog import Project
from alsql.web import progressdata
from alsql.schema import (
    alerts,
    evaluation_set,
    annotations,
    current_labels,
    embeddings,
    items,
    model_versions,
    predictions,
    round_items,
    rounds,
    runs,
)

__all__ = ["latest_model_id", "item_view", "history", "progress", "evaluation_coverage", "accuracy_text",
           "map_points", "MAP_LIMIT"]

MAP_LIMIT = 50_000

# Built once: the labeling hot path only binds values.
_LATEST = select(func.max(model_versions.c.model_id)).where(
    model_versions.c.project_id == bindparam("pid"), model_versions.c.status == "ready")
_HISTORY = (
    select(annotations.c.annotation_id, annotations.c.class_id, annotations.c.annotator,
           annotations.c.created_at, annotations.c.source, annotations.c.seconds)
    .where(annotations.c.project_id == bindparam("pid"), annotations.c.item_id == bindparam("item"))
    .order_by(annotations.c.annotation_id)
)
# The item and the model's guess in one round trip (a LEFT JOIN on the prediction's key).
_ITEM_GUESS = (
    select(items.c.item_id, items.c.width, items.c.height, items.c.media_type, items.c.status,
           predictions.c.class_id, predictions.c.confidence)
    .select_from(items.outerjoin(predictions, (predictions.c.model_id == bindparam("model"))
                                 & (predictions.c.item_id == items.c.item_id)))
    .where(items.c.item_id == bindparam("item"))
)


def latest_model_id(conn: Connection, project_id: int) -> int | None:
    """The newest ready model of the project, or None."""
    return conn.execute(_LATEST, {"pid": project_id}).scalar()


def _iso(ts) -> str | None:
    return ts.isoformat() if ts is not None else None


def history(conn: Connection, project: Project, item_id: int, only: str | None = None,
            gold: bool = False) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
    """The item's labels in the project, oldest first, and the label of record of those the
    caller may see (``alsql.annotate.label_of_record``). Never a gold label in the list (the
    labeling app does not show that an item is gold); ``only``: that annotator's labels
    alone (an item served blind: overlap or gold, docs/quality.md); ``gold``: the gold label
    counts for the record (reviewers and admins)."""
    rows = conn.execute(_HISTORY, {"pid": project.project_id, "item": item_id}).all()
    seen = [r for r in rows if r.source != "gold" and (only is None or r.annotator == only)]
    record = label_of_record(rows if gold and only is None else seen)
    return [
        {"annotation_id": r.annotation_id, "class_id": r.class_id, "class_name": _name(project, r.class_id),
         "annotator": r.annotator, "created_at": _iso(r.created_at), "source": r.source, "seconds": r.seconds}
        for r in seen
    ], record


def _name(project: Project, class_id: int | None) -> str | None:
    if class_id is None or not 0 <= class_id < len(project.classes):
        return None
    return project.classes[class_id]


def item_view(conn: Connection, project: Project, item_id: int, model_id: int | None,
              round_id: int | None = None, blind_for: str | None = None, gold: bool = False) -> dict[str, Any] | None:
    """The item as the labeling page needs it, or None when it does not exist (``blind_for``:
    the history shows that user's labels only). ``record`` is the label of record of the
    labels shown (``gold``: a gold label counts too; for reviewers and admins): the rule of
    ``current_labels``, so the page marks that class, not merely the newest label."""
    it = conn.execute(_ITEM_GUESS, {"item": item_id, "model": model_id if model_id is not None else 0}).first()
    if it is None:
        return None
    guess = None
    if model_id is not None and it.class_id is not None:
        guess = {"model_id": model_id, "class_id": it.class_id, "class_name": _name(project, it.class_id),
                 "confidence": it.confidence}
    hist, record = history(conn, project, item_id, blind_for, gold)
    return {
        "item_id": it.item_id, "width": it.width, "height": it.height, "media_type": it.media_type,
        "status": it.status, "image_url": f"/api/items/{it.item_id}/image", "round_id": round_id,
        "guess": guess, "history": hist,
        "record": None if record is None else {"class_id": record[0], "class_name": _name(project, record[0]),
                                               "annotation_id": record[1]},
    }


def _day(col, dialect: str):
    return cast(col, Date) if dialect == "mssql" else func.date(col)


NO_EVALUATION = "no evaluation labels yet"


def accuracy_text(metrics: Any) -> str:
    """``"83.0%"``, or ``NO_EVALUATION`` when the model was not evaluated (no labels in
    evaluation rounds when it was trained)."""
    acc = metrics.get("accuracy") if isinstance(metrics, dict) else None
    if acc is None or (isinstance(metrics, dict) and metrics.get("evaluated") == 0):
        return NO_EVALUATION
    return f"{100 * float(acc):.1f}%"


def evaluation_coverage(conn: Connection, project_id: int) -> dict[str, Any]:
    """Items of the project's evaluation rounds (open or closed) that carry a label:
    ``{"rounds", "size", "labeled", "coverage"}`` (coverage None when there is none)."""
    eval_rounds = select(rounds.c.round_id).where(rounds.c.project_id == project_id,
                                                  rounds.c.purpose == "evaluation")
    n_rounds, size = conn.execute(
        select(func.count(func.distinct(round_items.c.round_id)), func.count(func.distinct(round_items.c.item_id)))
        .where(round_items.c.round_id.in_(eval_rounds.scalar_subquery()))
    ).one()
    labeled = conn.execute(select(func.count(func.distinct(evaluation_set.c.item_id)))
                           .where(evaluation_set.c.project_id == project_id)).scalar_one()
    return {"rounds": n_rounds, "size": size, "labeled": labeled,
            "coverage": round(labeled / size, 4) if size else None}


def progress(conn: Connection, project: Project) -> dict[str, Any]:
    pid = project.project_id
    per_class = dict(conn.execute(
        select(current_labels.c.class_id, func.count())
        .where(current_labels.c.project_id == pid).group_by(current_labels.c.class_id)
    ).all())
    day = _day(annotations.c.created_at, conn.dialect.name).label("day")
    by_day = conn.execute(
        select(day, func.count()).where(annotations.c.project_id == pid).group_by(day).order_by(day)
    ).all()
    models = conn.execute(
        select(model_versions.c.model_id, model_versions.c.architecture, model_versions.c.label_count,
               model_versions.c.metrics, model_versions.c.created_at)
        # classifiers only: a pretrained encoder (alsql pretrain) has no accuracy to show
        .where(model_versions.c.project_id == pid, model_versions.c.status != "encoder")
        .order_by(model_versions.c.model_id)
    ).all()
    open_rounds = conn.execute(
        select(rounds.c.round_id, rounds.c.strategy, rounds.c.purpose, rounds.c.budget, rounds.c.created_at)
        .where(rounds.c.project_id == pid, rounds.c.status == "open").order_by(rounds.c.round_id)
    ).all()
    failed = conn.execute(
        select(runs.c.run_id, runs.c.step, runs.c.trigger, runs.c.error, runs.c.finished_at)
        .where(runs.c.status == "failed", (runs.c.project_id == pid) | runs.c.project_id.is_(None))
        .order_by(runs.c.run_id.desc()).limit(20)
    ).all()
    drift = conn.execute(
        select(alerts.c.alert_id, alerts.c.kind, alerts.c.message, alerts.c.value, alerts.c.created_at)
        .where(alerts.c.project_id == pid).order_by(alerts.c.alert_id.desc()).limit(20)
    ).all()
    return {
        "project_id": pid,
        "classes": [{"class_id": i, "name": n, "labels": per_class.get(i, 0)} for i, n in enumerate(project.classes)],
        "labels_total": sum(per_class.values()),
        "labels_per_day": [{"day": str(d), "labels": n} for d, n in by_day],
        "labels_over_time": progressdata.labels_over_time(conn, pid),
        "models": [
            {"model_id": m.model_id, "architecture": m.architecture, "label_count": m.label_count,
             "accuracy": (m.metrics or {}).get("accuracy") if isinstance(m.metrics, dict) else None,
             "evaluated": (m.metrics or {}).get("evaluated") if isinstance(m.metrics, dict) else None,
             "accuracy_text": accuracy_text(m.metrics), "created_at": _iso(m.created_at),
             **progressdata.model_quality(m.metrics)}
            for m in models
        ],
        "evaluation": evaluation_coverage(conn, pid),
        "answer": progressdata.answer(conn, pid, project.name),
        "rounds": [
            {"round_id": r.round_id, "strategy": r.strategy, "purpose": r.purpose, "budget": r.budget,
             "pending": _pending(conn, r.round_id), "created_at": _iso(r.created_at)}
            for r in open_rounds
        ],
        "failed_runs": [
            {"run_id": r.run_id, "step": r.step, "trigger": r.trigger, "error": (r.error or "")[:500],
             "finished_at": _iso(r.finished_at)} for r in failed
        ],
        "alerts": [
            {"alert_id": a.alert_id, "kind": a.kind, "message": a.message, "value": a.value,
             "created_at": _iso(a.created_at)} for a in drift
        ],
    }


def _pending(conn: Connection, round_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(round_items)
        .where(round_items.c.round_id == round_id, round_items.c.status == "pending")
    ).scalar_one()


def map_points(conn: Connection, project: Project, model_id: int | None, limit: int = MAP_LIMIT,
               after: int = 0) -> dict[str, Any]:
    """Columns of up to ``limit`` embedded items with ``item_id > after``, in item order."""
    out: dict[str, Any] = {"model_id": model_id, "classes": list(project.classes), "item_id": [], "x": [],
                           "y": [], "label": [], "predicted": [], "confidence": [], "next_after": None}
    if model_id is None:
        return out
    from alsql.models.heads import embedding_model_id  # a head's map is its encoder's

    r4 = (lambda c: func.round(c, 4)) if conn.dialect.name == "sqlite" else (lambda c: c)  # smaller JSON
    pts = conn.execute(
        select(embeddings.c.item_id, r4(embeddings.c.x), r4(embeddings.c.y))
        .where(embeddings.c.model_id == embedding_model_id(conn, model_id), embeddings.c.item_id > after,
               embeddings.c.x.is_not(None))
        .order_by(embeddings.c.item_id).limit(limit)
    ).cursor.fetchall()
    if not pts:
        return out
    ids, xs, ys = (list(col) for col in zip(*pts))
    lo, hi = ids[0], ids[-1]
    guess = {r[0]: r for r in conn.execute(
        select(predictions.c.item_id, predictions.c.class_id, predictions.c.confidence)
        .where(predictions.c.model_id == model_id, predictions.c.item_id.between(lo, hi))
    ).cursor.fetchall()}
    # The label of record (current_labels: review > gold > majority), not merely the newest label.
    label = dict(conn.execute(
        select(current_labels.c.item_id, current_labels.c.class_id)
        .where(current_labels.c.project_id == project.project_id, current_labels.c.item_id.between(lo, hi),
               current_labels.c.class_id.is_not(None))
    ).cursor.fetchall())
    none = (None, -1, None)
    g = [guess.get(i, none) for i in ids]
    out.update(item_id=ids, x=xs, y=[0.0 if v is None else v for v in ys], predicted=[r[1] for r in g],
               confidence=[r[2] for r in g], label=[label.get(i, -1) for i in ids],
               next_after=hi if len(ids) == limit else None)
    return out
