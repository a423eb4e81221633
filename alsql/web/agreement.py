"""The progress page's annotation-quality figures, read from the dbt marts.

``quality(conn, project_id)`` reads ``annotator_performance`` (the all-time row of each
annotator: labels, median seconds per label, accuracy on gold items, agreement with the
label of record) and ``annotator_agreement`` (Cohen's kappa per annotator pair and the
project's Krippendorff's alpha) where ``alsql marts build`` put them (SQLite: beside
alsql's tables; PostgreSQL and SQL Server: schema ``marts``). The figures are as of the
last build; ``labels_since`` counts the annotators' labels given after it (the marts
carry the newest annotation id they saw), so the page says how fresh they are.

Every query reads one project's rows of a mart (a few per annotator or pair) and is
capped at ``LIMIT`` rows; ``labels_since`` is a range on the annotation id index. When
the marts were never built, ``built`` is False and the page says how to build them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, column, func, inspect, literal, select, table

from alsql.schema import annotations

__all__ = ["LIMIT", "RATER_SOURCES", "quality"]

LIMIT = 200  # annotators (and annotator pairs) shown
RATER_SOURCES = ("ui", "import")  # as the marts: reviews, gold labels and the oracle are no raters

_PERFORMANCE_COLUMNS = ("project_id", "annotator", "period", "labels", "median_seconds", "gold_answers",
                        "gold_accuracy", "record_answers", "record_agreement", "last_annotation_id")
_AGREEMENT_COLUMNS = ("project_id", "annotator_a", "annotator_b", "pair_items", "observed_agreement", "kappa",
                      "project_annotators", "alpha_items", "alpha")


def _mart(conn: Connection, name: str, columns: tuple[str, ...]):
    schema = None if conn.dialect.name == "sqlite" else "marts"
    if not inspect(conn).has_table(name, schema=schema):
        return None
    return table(name, *(column(c) for c in columns), schema=schema)


def _float(v) -> float | None:
    return None if v is None else float(v)


def quality(conn: Connection, project_id: int) -> dict[str, Any]:
    """``{"built", "annotators", "pairs", "alpha", "alpha_items", "labels_since"}`` for the project.

    ``annotators``: dicts with labels, median_seconds, gold_answers, gold_accuracy,
    record_answers, record_agreement (None where undefined), busiest first. ``pairs``:
    annotator_a, annotator_b, pair_items, observed_agreement, kappa (None when undefined),
    most common items first. ``alpha``: None when no item has two annotators or every
    label is one class.
    """
    perf = _mart(conn, "annotator_performance", _PERFORMANCE_COLUMNS)
    agree = _mart(conn, "annotator_agreement", _AGREEMENT_COLUMNS)
    out: dict[str, Any] = {"built": perf is not None and agree is not None, "annotators": [], "pairs": [],
                           "alpha": None, "alpha_items": 0, "labels_since": None}
    if not out["built"]:
        return out
    p = perf.c
    rows = conn.execute(
        select(p.annotator, p.labels, p.median_seconds, p.gold_answers, p.gold_accuracy, p.record_answers,
               p.record_agreement, p.last_annotation_id)
        .where(p.project_id == project_id, p.period == literal("all_time"))
        .order_by(p.labels.desc(), p.annotator).limit(LIMIT)
    ).all()
    out["annotators"] = [
        {"annotator": r.annotator, "labels": int(r.labels), "median_seconds": _float(r.median_seconds),
         "gold_answers": int(r.gold_answers), "gold_accuracy": _float(r.gold_accuracy),
         "record_answers": int(r.record_answers), "record_agreement": _float(r.record_agreement)}
        for r in rows
    ]
    a = agree.c
    pairs = conn.execute(
        select(a.annotator_a, a.annotator_b, func.max(a.pair_items).label("pair_items"),
               func.max(a.observed_agreement).label("observed"), func.max(a.kappa).label("kappa"))
        .where(a.project_id == project_id)
        .group_by(a.annotator_a, a.annotator_b)
        .order_by(func.max(a.pair_items).desc(), a.annotator_a, a.annotator_b).limit(LIMIT)
    ).all()
    out["pairs"] = [
        {"annotator_a": r.annotator_a, "annotator_b": r.annotator_b, "pair_items": int(r.pair_items),
         "observed_agreement": _float(r.observed), "kappa": _float(r.kappa)} for r in pairs
    ]
    alpha = conn.execute(
        select(func.max(a.alpha), func.max(a.alpha_items)).where(a.project_id == project_id)
    ).one()
    out["alpha"], out["alpha_items"] = _float(alpha[0]), int(alpha[1] or 0)
    newest = conn.execute(
        select(func.max(p.last_annotation_id)).where(p.project_id == project_id, p.period == literal("all_time"))
    ).scalar()
    out["labels_since"] = conn.execute(
        select(func.count()).select_from(annotations).where(
            annotations.c.project_id == project_id, annotations.c.annotation_id > (newest or 0),
            annotations.c.source.in_(RATER_SOURCES), annotations.c.annotator.is_not(None))
    ).scalar_one()
    return out
