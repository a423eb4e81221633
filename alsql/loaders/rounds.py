"""Rounds as a team hands them around: list, export, close, and close what labels answer.

- ``mark_answered(conn, project_id, item_ids, at)``: the items' ``pending`` round items in
  the project's open rounds become ``labeled`` (``labeled_at = at``), the status the web
  queue sets when an annotator labels; a round left with nothing pending is closed (as
  the queue closes it). Label import calls it in its own transaction, so imported labels
  are never served again. Overlap copies are not opened for imported labels.
- ``round_summaries(engine, project)``: the project's rounds with pending / labeled /
  skipped counts, newest first.
- ``export_round(engine, round_id, fmt, out)``: a round's items in rank order (rank,
  item_id, uri in full with its ``#t=`` fragment, score, status, assigned_to) as ``csv``
  (cells a spreadsheet would run as formulas get a leading ``'``), ``jsonl`` or rows.
- ``close_round(engine, round_id)``: its pending items become ``skipped``, its open
  overlap copies are withdrawn, and the round is ``closed``: the app serves none of it.
- ``insert_round(conn, project_id, model_id, ids, strategy, params, scores=None)``: an open
  train round of chosen items (the map's lasso, semantic search's "label these"), at most
  ``MAX_ROUND`` items, inside the caller's write transaction.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Connection, Engine, and_, case, func, insert, select, update

from alsql.catalog import get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import items, round_items, rounds
from alsql.schema.tables import utcnow

__all__ = ["RoundSummary", "ClosedRound", "mark_answered", "round_summaries", "round_rows", "export_round",
           "close_round", "ROUND_FORMATS", "MAX_ROUND", "insert_round"]

ROUND_FORMATS = ("csv", "jsonl", "table")
ROUND_COLUMNS = ("rank", "item_id", "uri", "score", "status", "assigned_to")
_CHUNK = 500


def mark_answered(conn: Connection, project_id: int, item_ids: Iterable[int], at: datetime) -> int:
    """Mark the items' pending round items in the project's open rounds ``labeled``; close the
    rounds left with nothing pending. Returns how many round items were marked."""
    ids = list(dict.fromkeys(item_ids))
    open_ids = list(conn.execute(
        select(rounds.c.round_id).where(rounds.c.project_id == project_id, rounds.c.status == "open")).scalars())
    if not ids or not open_ids:
        return 0
    marked = 0
    for s in range(0, len(ids), _CHUNK):
        marked += conn.execute(
            update(round_items)
            .where(round_items.c.item_id.in_(ids[s : s + _CHUNK]), round_items.c.status == "pending",
                   round_items.c.round_id.in_(open_ids))
            .values(status="labeled", labeled_at=at)
        ).rowcount
    if marked:
        still = select(round_items.c.round_id).where(round_items.c.round_id == rounds.c.round_id,
                                                      round_items.c.status == "pending").exists()
        conn.execute(update(rounds).where(rounds.c.round_id.in_(open_ids), ~still)
                     .values(status="closed", closed_at=at))
    return marked


@dataclass(frozen=True)
class RoundSummary:
    round_id: int
    strategy: str
    purpose: str
    status: str
    model_id: int | None
    created_at: Any
    size: int
    pending: int
    labeled: int
    skipped: int


def round_summaries(engine: Engine, project: str | int) -> list[RoundSummary]:
    """The project's rounds, newest first, with their items counted by status."""
    def n(status: str):
        return func.coalesce(func.sum(case((round_items.c.status == status, 1), else_=0)), 0)

    with engine.connect() as conn:
        proj = get_project(conn, project)
        q = (select(rounds.c.round_id, rounds.c.strategy, rounds.c.purpose, rounds.c.status, rounds.c.model_id,
                    rounds.c.created_at, func.count(round_items.c.rank), n("pending"), n("labeled"), n("skipped"))
             .select_from(rounds.outerjoin(round_items, round_items.c.round_id == rounds.c.round_id))
             .where(rounds.c.project_id == proj.project_id)
             .group_by(rounds.c.round_id, rounds.c.strategy, rounds.c.purpose, rounds.c.status, rounds.c.model_id,
                       rounds.c.created_at)
             .order_by(rounds.c.round_id.desc()))
        return [RoundSummary(*(r[:6]), *(int(v) for v in r[6:])) for r in conn.execute(q)]


def _round_row(conn: Connection, round_id: int):
    row = conn.execute(select(rounds).where(rounds.c.round_id == round_id)).first()
    if row is None:
        raise AlsqlError(f"round {round_id}: no such round (see `alsql round list --project P`)")
    return row


def round_rows(engine: Engine, round_id: int) -> Iterator[dict[str, Any]]:
    """The round's items in rank order: ``ROUND_COLUMNS`` per row (streamed)."""
    q = (select(round_items.c.rank, round_items.c.item_id, items.c.uri, round_items.c.score, round_items.c.status,
                round_items.c.assigned_to)
         .join(items, items.c.item_id == round_items.c.item_id)
         .where(round_items.c.round_id == round_id).order_by(round_items.c.rank))
    with engine.connect() as conn:
        _round_row(conn, round_id)
        for row in conn.execution_options(stream_results=True, yield_per=5000).execute(q):
            yield dict(row._mapping)


def export_round(engine: Engine, round_id: int, fmt: str, out: IO[str]) -> int:
    """Write the round's items as ``csv`` or ``jsonl``; return how many."""
    from alsql.loaders.labels import _cell

    if fmt not in ("csv", "jsonl"):
        raise AlsqlError(f"--format {fmt!r}: expected one of {', '.join(ROUND_FORMATS)}")
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(ROUND_COLUMNS))
        writer.writeheader()
    n = 0
    for row in round_rows(engine, round_id):
        if writer is not None:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        else:
            out.write(json.dumps(row) + "\n")
        n += 1
    return n


@dataclass(frozen=True)
class ClosedRound:
    round_id: int
    was: str  # the round's status before
    skipped: int  # pending items now skipped
    labeled: int
    copies_withdrawn: int


def close_round(engine: Engine, round_id: int) -> ClosedRound:
    """Skip the round's pending items, withdraw its open overlap copies, close the round."""
    now = utcnow()
    with write_transaction(engine) as conn:
        row = _round_row(conn, round_id)
        skipped = conn.execute(
            update(round_items).where(round_items.c.round_id == round_id, round_items.c.status == "pending")
            .values(status="skipped", labeled_at=None)).rowcount
        copies = conn.execute(
            update(round_items).where(and_(round_items.c.round_id == round_id, round_items.c.copies_open > 0))
            .values(copies_open=0)).rowcount
        labeled = conn.execute(select(func.count()).select_from(round_items).where(
            round_items.c.round_id == round_id, round_items.c.status == "labeled")).scalar_one()
        if row.status != "closed":
            conn.execute(update(rounds).where(rounds.c.round_id == round_id).values(status="closed", closed_at=now))
    return ClosedRound(round_id, row.status, skipped, labeled, copies)


MAX_ROUND = 1_000_000  # items in one hand-picked round (lasso, search)


def insert_round(conn: Connection, project_id: int, model_id: int | None, ids, strategy: str, params: dict,
                 scores=None) -> int:
    """An open train round of ``ids`` (in rank order; ``scores`` beside them or None) with ``strategy``
    and ``params``, inside the caller's write transaction (the lasso's ``map_round``, the search's
    "label these")."""
    round_id = conn.execute(insert(rounds).values(
        project_id=project_id, model_id=model_id, strategy=strategy, purpose="train", budget=len(ids),
        status="open", params=params,
    ).returning(rounds.c.round_id)).scalar_one()
    rows = [{"round_id": round_id, "rank": r, "item_id": int(i), "status": "pending",
             "score": None if scores is None else float(scores[r])} for r, i in enumerate(ids)]
    for s in range(0, len(rows), 5000):
        conn.execute(insert(round_items), rows[s:s + 5000])
    return int(round_id)
