"""Appending human labels: the one way rows enter ``annotations``.

Annotations are append-only; a correction is a new row. ``annotation_id`` grows
with insertion: PostgreSQL and SQL Server assign it from an identity; on SQLite it
is assigned here under the write lock (``BEGIN IMMEDIATE``, see
``alsql.db.write_transaction``), so call this inside such a transaction there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select

from alsql.schema import annotations
from alsql.schema.tables import utcnow
from alsql.schema.views import VOTE_SOURCES

__all__ = ["insert_annotations", "label_of_record"]


def insert_annotations(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert label rows; return their annotation ids in the order given.

    Each row: project_id, item_id, class_id, and optionally annotator, created_at,
    seconds, source. Validation (class and item exist) is the caller's: the
    foreign keys refuse what slips through.
    """
    if not rows:
        return []
    now = utcnow()
    clean = [
        {
            "project_id": r["project_id"],
            "item_id": r["item_id"],
            "class_id": r["class_id"],
            "annotator": r.get("annotator"),
            "created_at": r.get("created_at") or now,
            "seconds": r.get("seconds"),
            "source": r.get("source") or "ui",
        }
        for r in rows
    ]
    if conn.dialect.name == "sqlite":
        start = conn.execute(select(func.coalesce(func.max(annotations.c.annotation_id), 0))).scalar_one()
        for i, r in enumerate(clean, start=1):
            r["annotation_id"] = start + i
        conn.execute(insert(annotations), clean)
        return [r["annotation_id"] for r in clean]
    result = conn.execute(
        insert(annotations).returning(annotations.c.annotation_id, sort_by_parameter_order=True),
        clean,
    )
    return list(result.scalars())


def label_of_record(rows: Iterable[Any]) -> tuple[int, int] | None:
    """``(class_id, annotation_id)`` of one item's label of record, by the rule of the
    ``current_labels`` view (``alsql.schema.views``), from the item's annotations (objects
    with ``annotation_id``, ``class_id``, ``annotator`` and ``source``) held in memory;
    None when no row is a vote, gold or review. The labeling app uses it for the one
    item on screen, so it asks nothing more of the database."""
    rows = sorted(rows, key=lambda r: r.annotation_id)
    for source in ("review", "gold"):
        decided = [r for r in rows if r.source == source]
        if decided:
            return decided[-1].class_id, decided[-1].annotation_id
    latest, first = {}, {}
    for r in rows:
        if r.source in VOTE_SOURCES:
            latest[r.annotator] = r
            first.setdefault(r.annotator, r.annotation_id)
    votes: dict[int, list[tuple[int, int]]] = {}
    for who, r in latest.items():
        votes.setdefault(r.class_id, []).append((first[who], r.annotation_id))
    if not votes:
        return None
    cls = min(votes, key=lambda c: (-len(votes[c]), min(f for f, _ in votes[c])))
    return cls, max(aid for _, aid in votes[cls])
