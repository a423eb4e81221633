"""The labeling queue: the next items for a user from the project's open rounds.

Train and evaluation rounds are both served, interleaved: the items of one claim,
and successive claims, alternate between the two purposes while both have work (an
annotator cannot tell which is which, so the evaluation set is labeled like the
rest, and a team that labels only in the browser gets accuracy figures). Within a
purpose: rounds by ``round_id``, items by ``rank`` (the clustered key).

A claim may name a preferred round (``round_id``; the map's "label these" opens the
label page on the round it made): its pending items come first, by rank, and only
when it has no more to give does the claim fall back to the order above. A preferred
round must be one of the project's rounds (``UnknownRound`` otherwise); a closed one
simply gives nothing.

A claimed item is leased to the user (``round_items.assigned_to`` /
``lease_expires_at``) for ``lease_seconds`` (``LEASE_SECONDS``, 2 minutes); nobody
else is offered it until the lease expires, so two annotators never get the same
item at once. The labeling page renews its leases while it is open (``renew``, a
heartbeat) and releases them when it closes (``release``); logout releases every
lease of the user. The claim is atomic: on PostgreSQL the
candidate rows are read ``FOR UPDATE SKIP LOCKED``; on SQLite the whole claim runs
inside ``write_transaction`` (``BEGIN IMMEDIATE``), which serializes claims.

A label is never refused because of a lease: if two users label one item (a lease
expired, or the map opened it), both rows are kept (annotations are append-only).
Labels are written only through ``alsql.annotate.insert_annotations`` with source
``ui``; the item's pending ``round_items`` rows in the project's open rounds turn
``labeled``. Skip turns them ``skipped`` and writes no annotation.

Speed: a per-process low-water mark per round (the lowest rank still pending; ranks
below it are labeled or skipped, and those states are final) makes the claim an
index range scan that starts where the work is; the mark is refreshed every
``LOW_REFRESH`` claims of a round, or when a claim comes up short. Each round closes
when its last pending item is labeled or skipped. A label is checked (item, class)
in one statement and marks its round items with one ``UPDATE ... RETURNING``; the
open rounds are read once per request (``Claims.open_rounds``).

Quality (docs/quality.md; the project's ``overlap``, ``overlap_annotators`` and
``gold_rate``, kept per process for ``SETTINGS_TTL`` seconds):

- Overlap: when the first serving of a round item is labeled and the item is among the
  ``overlap`` share (``alsql.quality.is_overlapped``, a stable hash of ``item_id``), its
  ``round_items.copies_open`` is set to ``overlap_annotators - 1``. A claim serves such
  items first (oldest round, lowest rank) to users who have not labeled them and were
  never served them: each further serving is an ``item_assignments`` row (kind
  ``overlap``, keyed by project, item and annotator, so never twice to one person) and
  takes one from ``copies_open`` (a conditional UPDATE of the round item; on PostgreSQL
  the candidate rows are locked ``FOR UPDATE SKIP LOCKED``). Skipping or giving back such
  a serving, or its lease expiring unlabeled, gives the copy back (``copies_open + 1``)
  and the row stays (status ``skipped``), so that person is not served it again. Expired
  copies are looked for at most every ``SWEEP_SECONDS`` per project (sooner once a copy
  this process served may have expired). A copy opened by another server process is
  served by this one from its next copy-book load (within ``COPY_BOOK_TTL`` seconds).
- Gold: each slot of a claim is a gold item with probability ``gold_rate`` (none when no
  other item is served): an item with a ``gold`` annotation that the user has not
  labeled and was never served (an ``item_assignments`` row of kind ``gold``). Gold items
  are never in the unlabeled pool (they carry an annotation) nor marked: the claim
  answer shows them like any item (the round of the claim, no gold label in the
  history), and the answer is an ordinary ``ui`` label.
- Items served through ``item_assignments`` are shown blind (``Claim.blind``): their
  history lists only the user's own labels, so a second annotator does not see the first.

Cost: the quality path adds no round trip to the plain one in the common case. Which
slots are gold is drawn in Python from the cached settings, and the gold tables are
touched only when a slot drew gold: one ``INSERT ... SELECT ... RETURNING`` finds and
serves gold items, from a random point of the project's gold ids. Copies are looked up
only when this process's copy book (``_CopyBook``: the project's open copies and who saw
each, reloaded every ``COPY_BOOK_TTL`` seconds) says one may be the user's to take;
otherwise the claim runs the plain path's statements. When they are looked up, the
user's open servings and the copy candidates come in ONE statement, the one the plain
claim spends on open servings (on PostgreSQL it also takes the copies and writes their
servings: data-modifying CTEs), and a copy served replaces the lease of a fresh item. The
label that opens an item's copies sets them in its own ``UPDATE``; the label of a copy or
gold item closes its serving alone (no round item to mark). Expired copies are swept at
most every ``SWEEP_SECONDS``.

Concurrency: on SQLite, writers of this process queue on a lock before ``BEGIN
IMMEDIATE`` (a wait that ends as soon as the writer before is done, instead of
SQLite's busy handler, which sleeps in steps of up to 100 ms). A request's writes
and the reads of its answer (``then``) share one transaction on one connection.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from datetime import timedelta

from sqlalchemy import (Connection, Engine, and_, bindparam, case, func, insert, literal, literal_column, null, or_,
                        select, text, union_all, update)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.writer import refresh_statistics
from alsql.quality import QualitySettings, is_overlapped, read_settings
from alsql.schema import annotations, classes, item_assignments, items, round_items, rounds
from alsql.schema.tables import utcnow

__all__ = ["Claim", "Claims", "LabelQueue", "UnknownRound", "LEASE_SECONDS", "LEFT_TTL", "MAX_CLAIM"]

LEASE_SECONDS = 120
LEFT_TTL = 5.0
MAX_CLAIM = 10
LOW_REFRESH = 64
SETTINGS_TTL = 5.0
SWEEP_SECONDS = 5.0
COPY_BOOK_TTL = 5.0
COPY_BOOK_MAX = 500


# Statements built once (bound parameters by name): the hot path only binds values.
_OPEN_ROUNDS = (
    select(rounds.c.round_id, rounds.c.purpose)
    .where(rounds.c.project_id == bindparam("pid"), rounds.c.status == "open")
    .order_by(rounds.c.round_id)
)
_ROUND_PROJECT = select(rounds.c.project_id).where(rounds.c.round_id == bindparam("rid"))
_PROJECT_OPEN = (select(rounds.c.round_id)
                 .where(rounds.c.project_id == bindparam("pid"), rounds.c.status == "open").scalar_subquery())
# A user's leases: pending rows it holds (the partial index ix_round_items_assigned_to).
_HELD = and_(round_items.c.assigned_to == bindparam("user"), round_items.c.status == "pending",
             round_items.c.assigned_to.is_not(None))
_FIRST_PENDING = (
    select(round_items.c.rank)
    .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank >= bindparam("low"),
           round_items.c.status == "pending")
    .order_by(round_items.c.rank).limit(1)
)
_FREE = (
    select(round_items.c.rank, round_items.c.item_id)
    .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank >= bindparam("low"),
           round_items.c.status == "pending",
           or_(round_items.c.assigned_to.is_(None), round_items.c.assigned_to == bindparam("user"),
               round_items.c.lease_expires_at < bindparam("now")),
           round_items.c.item_id.not_in(bindparam("exclude", expanding=True)))
    .order_by(round_items.c.rank).limit(bindparam("n"))
)
_LEASE = (
    update(round_items)
    .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank.in_(bindparam("ranks", expanding=True)))
    .values(assigned_to=bindparam("user"), lease_expires_at=bindparam("until"))
)
# PostgreSQL: the free rows locked (SKIP LOCKED: claimers never wait on each other) and
# leased by one UPDATE ... RETURNING.
# leased by one UPDATE ... RETURNING. The CTE is MATERIALIZED: evaluated once, so the
# rows this very UPDATE changes are not skipped and replaced by the next ones.
_FREE_LOCKED = _FREE.with_for_update(skip_locked=True).cte("free_rows").prefix_with("MATERIALIZED")
_FREE_AND_LEASE = (
    update(round_items)
    .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank == _FREE_LOCKED.c.rank)
    .values(assigned_to=bindparam("user"), lease_expires_at=bindparam("until"))
    .returning(round_items.c.rank, round_items.c.item_id)
)
_ITEM = select(items.c.item_id).where(items.c.item_id == bindparam("item"))
_CLASS = select(classes.c.class_id).where(classes.c.project_id == bindparam("pid"),
                                          classes.c.class_id == bindparam("cls"))
_BOTH = select(_ITEM.exists().label("item"), _CLASS.exists().label("cls"))
_PENDING_HERE = and_(
    round_items.c.item_id == bindparam("item"), round_items.c.status == "pending",
    round_items.c.round_id.in_(
        select(rounds.c.round_id).where(rounds.c.project_id == bindparam("pid"), rounds.c.status == "open")
        .scalar_subquery()),
)
_MARK = (update(round_items).where(_PENDING_HERE)
         .values(status=bindparam("status"), labeled_at=bindparam("at"))
         .returning(round_items.c.round_id, round_items.c.rank))
# A label that opens an overlapped item's further servings sets its copies in the same UPDATE.
_MARK_OPENING = _MARK.values(copies_open=bindparam("k"))

# -- quality: overlap copies and gold items (item_assignments) --------------------------
ia = item_assignments.c
_SETTINGS_NONE = QualitySettings()
_MINE = and_(ia.project_id == bindparam("pid"), ia.annotator == bindparam("user"),
             ia.status == literal_column("'pending'"))
_HELD_EXTRA = (select(ia.item_id, ia.kind, ia.round_id, ia.rank).where(_MINE)
               .order_by(ia.assigned_at, ia.item_id).limit(bindparam("n")))
def _unseen(item_col):
    """The user never labeled the item in the project and was never served it outside round_items."""
    labeled = select(literal_column("1")).where(annotations.c.project_id == bindparam("pid"),
                                       annotations.c.item_id == item_col,
                                       annotations.c.annotator == bindparam("user")).exists()
    served = select(literal_column("1")).where(ia.project_id == bindparam("pid"), ia.item_id == item_col,
                                      ia.annotator == bindparam("user")).exists()
    return and_(~labeled, ~served)


def _copies_select(limit: str):
    """Open copies of the project's overlapped items the user may be served: oldest round,
    lowest rank first; at most bind parameter ``limit``."""
    return (
        select(round_items.c.round_id, round_items.c.rank, round_items.c.item_id)
        .select_from(round_items.join(rounds, rounds.c.round_id == round_items.c.round_id))
        # constants rendered inline, so SQLite sees that the partial indexes qualify
        .where(rounds.c.project_id == bindparam("pid"), round_items.c.copies_open > literal_column("0"),
               round_items.c.item_id.not_in(bindparam("exclude", expanding=True)), _unseen(round_items.c.item_id))
        .order_by(round_items.c.round_id, round_items.c.rank).limit(bindparam(limit))
    )


_COPIES = _copies_select("n")
_COPIES_LOCKED = _COPIES.with_for_update(skip_locked=True, of=round_items)
# The user's open servings (offered again) and up to ``want`` copy candidates in ONE round
# trip, in place of the plain claim's check for open servings: with overlap on, a claim
# that serves no copy costs no more statements than one with overlap off.
_OFFER_AGAIN = (select(ia.item_id, ia.kind, ia.round_id, ia.rank)
                .where(_MINE, ia.item_id.not_in(bindparam("exclude", expanding=True)))
                .order_by(ia.assigned_at, ia.item_id).limit(bindparam("n")))
# SQLite plans the user's open servings as a search of the project's whole clustered key
# (item_assignments is WITHOUT ROWID, so that search is covering) unless statistics say
# otherwise, and the table starts empty, then gains a row per copy or gold item served: the
# search would grow with every serving. There the partial index of open servings is named.
_OFFER_AGAIN_SQLITE = (
    text("SELECT item_id, kind, round_id, rank FROM item_assignments INDEXED BY ix_item_assignments_pending "
         "WHERE project_id = :pid AND annotator = :user AND status = 'pending' AND item_id NOT IN :exclude "
         "ORDER BY assigned_at, item_id LIMIT :n")
    .bindparams(bindparam("exclude", expanding=True)).columns(ia.item_id, ia.kind, ia.round_id, ia.rank)
)
_ANY_OPEN_SQLITE = text("SELECT item_id FROM item_assignments INDEXED BY ix_item_assignments_pending "
                        "WHERE project_id = :pid AND annotator = :user AND status = 'pending' LIMIT 1")


def _held_and_copies_select(held_rows):
    cand = _copies_select("want").subquery("cand")
    return union_all(
        select(literal_column("1").label("held"), held_rows.c.item_id, held_rows.c.round_id, held_rows.c.rank,
               literal_column("1").label("served")),
        select(literal_column("0"), cand.c.item_id, cand.c.round_id, cand.c.rank, literal_column("0")),
    )


_HELD_AND_COPIES = _held_and_copies_select(_OFFER_AGAIN.subquery("held"))
_HELD_AND_COPIES_SQLITE = _held_and_copies_select(_OFFER_AGAIN_SQLITE.subquery("held"))
_SERVING_COLUMNS = ["project_id", "item_id", "annotator", "kind", "round_id", "rank", "status", "assigned_at",
                    "lease_expires_at"]


def _serving(item_id, kind: str, round_id, rank):
    """The SELECT list of a serving row inserted from a query (INSERT ... SELECT)."""
    return select(bindparam("pid", type_=ia.project_id.type), item_id, bindparam("user", type_=ia.annotator.type),
                  literal_column(f"'{kind}'"), round_id, rank, literal_column("'pending'"),
                  bindparam("now", type_=ia.assigned_at.type), bindparam("until", type_=ia.lease_expires_at.type))


def _pg_held_and_copies():
    """PostgreSQL: the same in one statement that also serves the copies: candidates locked
    ``FOR UPDATE SKIP LOCKED`` (claimers never wait on each other), one taken from each
    ``copies_open`` and a serving row inserted (ON CONFLICT DO NOTHING: a concurrent request
    of the same user won; ``served`` false, and the caller gives that copy back). No copy is
    taken when the user holds open servings (the caller then takes the right number)."""
    held = _OFFER_AGAIN.cte("held")
    cand = (_copies_select("want").where(~select(held.c.item_id).exists())
            .with_for_update(skip_locked=True, of=round_items).cte("cand").prefix_with("MATERIALIZED"))
    take = (update(round_items)
            .where(round_items.c.round_id == cand.c.round_id, round_items.c.rank == cand.c.rank,
                   round_items.c.copies_open > 0)
            .values(copies_open=round_items.c.copies_open - 1)
            .returning(round_items.c.round_id, round_items.c.rank, round_items.c.item_id).cte("take"))
    served = (pg_insert(item_assignments)
              .from_select(_SERVING_COLUMNS, _serving(take.c.item_id, "overlap", take.c.round_id, take.c.rank))
              .on_conflict_do_nothing().returning(ia.item_id).cte("served"))
    return union_all(
        select(literal_column("1").label("held"), held.c.item_id, held.c.round_id, held.c.rank,
               literal_column("1").label("served")),
        select(literal_column("0"), take.c.item_id, take.c.round_id, take.c.rank,
               case((served.c.item_id.is_(None), 0), else_=1))
        .select_from(take.outerjoin(served, served.c.item_id == take.c.item_id)),
    )


_PG_HELD_AND_COPIES = _pg_held_and_copies()
_TAKE_COPY = (update(round_items)
              .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank == bindparam("rk"),
                     round_items.c.copies_open > 0)
              .values(copies_open=round_items.c.copies_open - 1))
_GIVE_COPY = (update(round_items)
              .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank == bindparam("rk"))
              .values(copies_open=func.coalesce(round_items.c.copies_open, 0) + 1))
_EXPIRED_COPIES = (update(item_assignments)
                   .where(ia.project_id == bindparam("pid"), ia.status == "pending", ia.kind == "overlap",
                          ia.lease_expires_at < bindparam("now"))
                   .values(status="skipped", done_at=bindparam("now"), lease_expires_at=None)
                   .returning(ia.round_id, ia.rank))
# The copy book (``_CopyBook``): the project's open copies and who has seen each item.
_BOOK_COPIES = (
    select(round_items.c.round_id, round_items.c.rank, round_items.c.item_id, round_items.c.copies_open)
    .select_from(round_items.join(rounds, rounds.c.round_id == round_items.c.round_id))
    .where(rounds.c.project_id == bindparam("pid"), round_items.c.copies_open > literal_column("0"))
    .order_by(round_items.c.round_id, round_items.c.rank).limit(bindparam("cap"))
)
_BOOK_SEEN = union_all(
    select(annotations.c.item_id, annotations.c.annotator)
    .where(annotations.c.project_id == bindparam("pid"), annotations.c.item_id.in_(bindparam("items", expanding=True))),
    select(ia.item_id, ia.annotator)
    .where(ia.project_id == bindparam("pid"), ia.item_id.in_(bindparam("items", expanding=True))),
)
_gold = annotations.alias("gold")
# Gold items from ``lo`` (a random point of the project's gold ids, see ``_gold``) up to ``hi``:
# annotators do not all meet the same gold items first, and the lookup does not pass every
# gold item the user has seen before it finds one.
_GOLD = (
    select(_gold.c.item_id)
    .where(_gold.c.project_id == bindparam("pid"), _gold.c.source == literal_column("'gold'"),
           _gold.c.item_id >= bindparam("lo"), _gold.c.item_id < bindparam("hi"),
           select(items.c.item_id).where(items.c.item_id == _gold.c.item_id,
                                         items.c.status == literal_column("'ok'")).exists(),
           _gold.c.item_id.not_in(bindparam("exclude", expanding=True)), _unseen(_gold.c.item_id))
    .group_by(_gold.c.item_id).order_by(_gold.c.item_id).limit(bindparam("n"))
)
_GOLD_SPAN = select(func.min(_gold.c.item_id), func.max(_gold.c.item_id)).where(
    _gold.c.project_id == bindparam("pid"), _gold.c.source == literal_column("'gold'"))
_SERVED = (update(item_assignments)
           .where(ia.project_id == bindparam("pid"), ia.item_id == bindparam("item"),
                  ia.annotator == bindparam("user"), ia.status == "pending")
           .values(status=bindparam("status"), done_at=bindparam("at"), lease_expires_at=None)
           .returning(ia.kind, ia.round_id, ia.rank))
_gold_rows = _GOLD.subquery("gold_rows")
_GOLD_SERVE_ROWS = _serving(_gold_rows.c.item_id, "gold", null(), null())
_GOLD_SERVE = insert(item_assignments).from_select(_SERVING_COLUMNS, _GOLD_SERVE_ROWS).returning(ia.item_id)

_PG_GOLD_SERVE = (pg_insert(item_assignments).from_select(_SERVING_COLUMNS, _GOLD_SERVE_ROWS)
                  .on_conflict_do_nothing().returning(ia.item_id))
# One serving row (values bound at execution); PostgreSQL: nothing when the user has it already.
_SERVE_ONE = insert(item_assignments)
_PG_SERVE_ONE = pg_insert(item_assignments).on_conflict_do_nothing().returning(ia.item_id)


class _CopyBook:
    """This process's view of a project's open overlap copies: ``(round_id, rank) -> [item_id,
    copies left, annotators who labeled or were served the item]``.

    Only a hint, so that a claim looks copies up in the database only when one may be the
    user's to take (otherwise the claim runs the plain path's statements): loaded every
    ``COPY_BOOK_TTL`` seconds and after any copy comes back, kept up to date in between with
    the copies this process opens and serves. What is served is decided by the database as
    before; a copy opened by another server process is seen here at the next load.
    ``complete``: every open copy is listed (else every claim looks them up)."""

    def __init__(self, loaded_at: float, complete: bool, copies: dict[tuple[int, int], list]):
        self.loaded_at, self.complete, self.copies = loaded_at, complete, copies

    def may_serve(self, user: str, exclude: list[int]) -> bool:
        if not self.complete:
            return True
        return any(user not in seen and item not in exclude for item, _, seen in self.copies.values())


class UnknownRound(AlsqlError):
    """A preferred round that is not one of the project's rounds (the API answers 404)."""


@dataclass(frozen=True)
class Claim:
    """One leased item: where it sits in which round."""

    round_id: int | None
    rank: int | None
    item_id: int
    blind: bool = False  # served through item_assignments: show only the user's own labels


class Claims(list):
    """The claims of one request; ``open_rounds``: the project's open rounds after it."""

    open_rounds: list[int] | None = None


Then = Callable[[Connection, "list[Claim]"], Any]


class LabelQueue:
    """Claims, labels and skips for one database. Thread-safe; one per app."""

    def __init__(self, engine: Engine, lease_seconds: int = LEASE_SECONDS, rng: random.Random | None = None):
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self._rng = rng or random.Random()  # which claim slots are gold
        self._settings: dict[int, tuple[QualitySettings, float]] = {}
        self._low: dict[int, int] = {}
        self._left: dict[int, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._turn = 0
        self._since_low: dict[int, int] = {}
        self.closed: set[int] = set()  # rounds this process closed
        self._writer = threading.Lock()  # SQLite: this process's writers queue here
        self._owner: dict[int, int] = {}  # round -> project, for preferred rounds (never changes)
        self._stats_checked = False  # SQLite: round_items has planner statistics (see _copies)
        self._sweep_at: dict[int, float] = {}  # project -> when expired copies are next looked for
        self._books: dict[int, _CopyBook] = {}  # project -> its open copies (see _CopyBook)
        self._gold_spans: dict[int, tuple[tuple[int, int] | None, float]] = {}

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite taken in turn by this process's threads."""
        if self.engine.dialect.name != "sqlite":
            with write_transaction(self.engine) as conn:
                yield conn
            return
        with self._writer, write_transaction(self.engine) as conn:
            yield conn

    def _run(self, work: Callable[[Connection], tuple[Any, "Claims"]], then: Then | None):
        """``work`` in a write transaction, and ``then(conn, claims)`` in the same one (one
        connection per request)."""
        with self._write() as conn:
            result, claims = work(conn)
            return result, (then(conn, claims) if then else claims)

    # -- reading ---------------------------------------------------------------
    def open_rounds(self, conn: Connection, project_id: int) -> list[int]:
        """The project's open rounds (train and evaluation), oldest first."""
        return list(conn.execute(_OPEN_ROUNDS, {"pid": project_id}).scalars())

    def left_total(self, conn: Connection, project_id: int) -> int:
        """Items still pending over every open round of the project (see ``left``)."""
        return sum(self.left(conn, rid) for rid in self.open_rounds(conn, project_id))

    def left(self, conn: Connection, round_id: int) -> int:
        """Items still pending in the round.

        Counted from the low-water mark, then kept for ``LEFT_TTL`` seconds and
        decremented by this process's labels and skips (other processes' show after
        the TTL): a count over a million-item round stays off the hot path.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._left.get(round_id)
        if hit is not None and now - hit[1] < LEFT_TTL:
            return max(hit[0], 0)
        value = conn.execute(
            select(func.count()).select_from(round_items).where(
                round_items.c.round_id == round_id,
                round_items.c.rank >= self._low.get(round_id, 0),
                round_items.c.status == "pending",
            )
        ).scalar_one()
        with self._lock:
            self._left[round_id] = (value, now)
        return value

    def _done(self, round_ids: list[int]) -> None:
        with self._lock:
            for rid in round_ids:
                if rid in self._left:
                    value, t = self._left[rid]
                    self._left[rid] = (value - 1, t)

    # -- claiming --------------------------------------------------------------
    def _start(self, conn: Connection, round_id: int) -> int | None:
        """Where to scan the round from: the low-water mark, refreshed when it is unknown
        or every ``LOW_REFRESH`` claims; None when nothing is pending."""
        with self._lock:
            low = self._low.get(round_id)
            since = self._since_low.get(round_id, LOW_REFRESH)
            self._since_low[round_id] = since + 1
        if low is not None and since < LOW_REFRESH:
            return low
        with self._lock:
            self._since_low[round_id] = 0
        return self._first_pending(conn, round_id)

    def _first_pending(self, conn: Connection, round_id: int) -> int | None:
        low = self._low.get(round_id, 0)
        first = conn.execute(_FIRST_PENDING, {"rid": round_id, "low": low}).scalar()
        with self._lock:
            if first is not None and first > self._low.get(round_id, 0):
                self._low[round_id] = first
        return first

    def _claim_in(self, conn: Connection, round_id: int, start: int, user: str, n: int,
                  exclude: list[int], now) -> list[Claim]:
        params = {"rid": round_id, "low": start, "user": user, "now": now, "n": n, "exclude": exclude or [0]}
        if conn.dialect.name == "postgresql":  # find and lease in one statement (one round trip)
            rows = conn.execute(_FREE_AND_LEASE, {**params, "until": now + self.lease}).all()
            return sorted((Claim(round_id, r.rank, r.item_id) for r in rows), key=lambda c: c.rank)
        else:
            got = [Claim(round_id, r.rank, r.item_id) for r in conn.execute(_FREE, params)]
        if got:
            conn.execute(_LEASE, {"rid": round_id, "ranks": [c.rank for c in got], "user": user,
                                  "until": now + self.lease})
        return got

    def _claim_from(self, conn: Connection, round_ids: list[int], user: str, n: int, exclude: list[int],
                    now) -> list[Claim]:
        out: list[Claim] = []
        for round_id in round_ids:
            if len(out) >= n:
                break
            first = self._start(conn, round_id)
            got = self._claim_in(conn, round_id, first, user, n - len(out), exclude, now) if first is not None else []
            if first is not None and len(got) < n - len(out):  # short: is anything still pending at all?
                with self._lock:
                    self._since_low[round_id] = 0
                first = self._first_pending(conn, round_id)
            if first is None:
                conn.execute(update(rounds).where(rounds.c.round_id == round_id, rounds.c.status == "open")
                             .values(status="closed", closed_at=now))
                self.closed.add(round_id)
                continue
            out += got
        return out

    def _check_round(self, conn: Connection, project_id: int, round_id: int) -> None:
        """Raise ``UnknownRound`` unless the round is one of the project's (open or not)."""
        with self._lock:
            owner = self._owner.get(round_id)
        if owner is None:
            owner = conn.execute(_ROUND_PROJECT, {"rid": round_id}).scalar()
            if owner is not None:
                with self._lock:
                    self._owner[round_id] = owner
        if owner != project_id:
            raise UnknownRound(f"round_id {round_id}: not a round of project {project_id}")

    # -- quality: settings, overlap copies, gold ---------------------------------
    def settings(self, conn: Connection, project_id: int) -> QualitySettings:
        """The project's quality settings, kept ``SETTINGS_TTL`` seconds (``forget_settings``
        drops them at once: the admin page calls it after a change)."""
        now = time.monotonic()
        with self._lock:
            hit = self._settings.get(project_id)
        if hit is not None and now - hit[1] < SETTINGS_TTL:
            return hit[0]
        try:
            value = read_settings(conn, project_id)
        except AlsqlError:
            value = _SETTINGS_NONE
        with self._lock:
            self._settings[project_id] = (value, now)
        return value

    def forget_settings(self, project_id: int | None = None) -> None:
        self._forget(self._settings, project_id)

    def _forget(self, cache: dict, project_id: int | None) -> None:
        """Drop ``project_id``'s entry of a per-project cache (every entry when None)."""
        with self._lock:
            if project_id is None:
                cache.clear()
            else:
                cache.pop(project_id, None)

    def _serve(self, conn: Connection, project_id: int, user: str, item_id: int, kind: str,
               round_id: int | None, rank: int | None, now) -> bool:
        """Record a serving outside round_items; False when the user already has one for the
        item (a concurrent request of the same user won: PostgreSQL's ON CONFLICT)."""
        row = {"project_id": project_id, "item_id": item_id, "annotator": user, "kind": kind,
               "round_id": round_id, "rank": rank, "status": "pending", "assigned_at": now,
               "lease_expires_at": now + self.lease}
        if conn.dialect.name == "postgresql":
            return conn.execute(_PG_SERVE_ONE, row).first() is not None
        conn.execute(_SERVE_ONE, row)
        return True

    def _note_copy_lease(self, project_id: int) -> None:
        """A copy was served with a lease: sweep expired copies again once it may have expired."""
        due = time.monotonic() + self.lease.total_seconds()
        with self._lock:
            self._sweep_at[project_id] = min(self._sweep_at.get(project_id, 0.0), due)

    def _sweep(self, conn: Connection, project_id: int, now) -> bool:
        """Give back the project's copies whose lease expired unlabeled; whether any came back.

        At most every ``SWEEP_SECONDS`` per project (sooner when a copy this process served
        has since expired): a lease expiry reaches the pool within seconds, off the hot path."""
        t = time.monotonic()
        with self._lock:
            if self._sweep_at.get(project_id, 0.0) > t:
                return False
            self._sweep_at[project_id] = t + SWEEP_SECONDS
        back = conn.execute(_EXPIRED_COPIES, {"pid": project_id, "now": now}).all()
        if back:
            conn.execute(_GIVE_COPY, [{"rid": b.round_id, "rk": b.rank} for b in back])
            self._forget_book(project_id)
        return bool(back)

    def _copy_book(self, conn: Connection, project_id: int, now) -> _CopyBook:
        """The project's copy book, loaded when missing or older than ``COPY_BOOK_TTL``; expired
        copies are swept first when due (``_sweep``)."""
        self._sweep(conn, project_id, now)
        t = time.monotonic()
        with self._lock:
            book = self._books.get(project_id)
        if book is not None and t - book.loaded_at < COPY_BOOK_TTL:
            return book
        if conn.dialect.name == "sqlite" and not self._stats_checked:
            self._ensure_statistics(conn)
        rows = conn.execute(_BOOK_COPIES, {"pid": project_id, "cap": COPY_BOOK_MAX}).all()
        seen: dict[int, set] = {}
        if rows:
            for item, who in conn.execute(_BOOK_SEEN, {"pid": project_id, "items": sorted({r.item_id for r in rows})}):
                seen.setdefault(item, set()).add(who)
        book = _CopyBook(t, len(rows) < COPY_BOOK_MAX,
                         {(r.round_id, r.rank): [r.item_id, r.copies_open, seen.get(r.item_id, set())] for r in rows})
        with self._lock:
            self._books[project_id] = book
        return book

    def _may_serve_copy(self, conn: Connection, project_id: int, user: str, exclude: list[int], now) -> bool:
        book = self._copy_book(conn, project_id, now)
        with self._lock:  # other threads update the book
            return book.may_serve(user, exclude)

    def _forget_book(self, project_id: int | None = None) -> None:
        """A copy came back to the pool (skip, release, lease expiry): reload the book."""
        self._forget(self._books, project_id)

    def _book_opened(self, project_id: int, hit: list, item_id: int, k: int, user: str) -> None:
        with self._lock:
            book = self._books.get(project_id)
            if book is not None:
                for h in hit:
                    book.copies[(h.round_id, h.rank)] = [item_id, k, {user}]

    def _book_taken(self, project_id: int, user: str, got: list[Claim]) -> None:
        with self._lock:
            book = self._books.get(project_id)
            if book is None:
                return
            for c in got:
                entry = book.copies.get((c.round_id, c.rank))
                if entry is not None:
                    entry[1] -= 1
                    entry[2].add(user)
                    if entry[1] <= 0:
                        del book.copies[(c.round_id, c.rank)]

    def _take(self, conn: Connection, project_id: int, user: str, rows: Iterable[Any], now) -> list[Claim]:
        """Serve copy candidates (generic SQL): one taken from each ``copies_open``, a serving row each."""
        got = []
        for r in rows:
            if conn.execute(_TAKE_COPY, {"rid": r.round_id, "rk": r.rank}).rowcount != 1:
                continue
            if self._serve(conn, project_id, user, r.item_id, "overlap", r.round_id, r.rank, now):
                got.append(Claim(r.round_id, r.rank, r.item_id, blind=True))
            else:
                conn.execute(_GIVE_COPY, {"rid": r.round_id, "rk": r.rank})
                self._forget_book(project_id)
        if got:
            self._note_copy_lease(project_id)
            self._book_taken(project_id, user, got)
        return got

    def _copies(self, conn: Connection, project_id: int, user: str, n: int, exclude: list[int], now,
                swept: bool = False) -> list[Claim]:
        """Up to ``n`` further servings of overlapped items (oldest round, lowest rank first);
        when short, expired copies are given back first (``_sweep``) and looked up again."""
        params = {"pid": project_id, "user": user, "n": n, "exclude": exclude or [0]}
        if conn.dialect.name == "sqlite" and not self._stats_checked:
            self._ensure_statistics(conn)
        stmt = _COPIES_LOCKED if conn.dialect.name == "postgresql" else _COPIES
        got = self._take(conn, project_id, user, conn.execute(stmt, params).all(), now)
        if len(got) < n and not swept and self._sweep(conn, project_id, now):
            got += self._copies(conn, project_id, user, n - len(got), exclude + [c.item_id for c in got], now,
                                swept=True)
        return got

    def _held_and_copies(self, conn: Connection, project_id: int, user: str, gold: list[bool],
                         exclude: list[int], copies: bool, now) -> tuple[list[Claim], list[Claim], int]:
        """The user's open servings outside round_items (offered again: a reload loses
        nothing), then overlap copies when ``copies``, in one round trip; ``gold``: which of
        the claim's slots are gold. Returns (held, copies served, gold slots left)."""
        n = len(gold)
        want0 = n - sum(gold) if copies else 0
        pg = conn.dialect.name == "postgresql"
        if want0 and not pg and not self._stats_checked:
            self._ensure_statistics(conn)
        until = now + self.lease
        stmt = (_PG_HELD_AND_COPIES if pg else _HELD_AND_COPIES_SQLITE if conn.dialect.name == "sqlite"
                else _HELD_AND_COPIES)
        rows = conn.execute(stmt,
                            {"pid": project_id, "user": user, "n": n, "want": want0, "exclude": exclude or [0],
                             "now": now, "until": until}).all()
        held = [Claim(r.round_id, r.rank, r.item_id, blind=True) for r in rows if r.held]
        cand = sorted((r for r in rows if not r.held), key=lambda r: (r.round_id, r.rank))
        if held:
            conn.execute(update(item_assignments).where(_MINE, ia.item_id.in_([c.item_id for c in held]))
                         .values(lease_expires_at=until), {"pid": project_id, "user": user})
        gold_n = sum(gold[len(held):])  # the slots after the held ones
        want = n - len(held) - gold_n if copies else 0
        got: list[Claim] = []
        if pg:  # served in the statement (only when nothing was held: then want == want0)
            for r in cand:
                if r.served:
                    got.append(Claim(r.round_id, r.rank, r.item_id, blind=True))
                else:
                    conn.execute(_GIVE_COPY, {"rid": r.round_id, "rk": r.rank})
                    self._forget_book(project_id)
            if got:
                self._note_copy_lease(project_id)
                self._book_taken(project_id, user, got)
            if held and want > 0:
                got = self._copies(conn, project_id, user, want, exclude + [c.item_id for c in held], now)
        elif want > 0:
            got = self._take(conn, project_id, user, cand[:want], now)
        if len(got) < want and not (pg and held) and self._sweep(conn, project_id, now):
            taken = exclude + [c.item_id for c in held + got]
            got += self._copies(conn, project_id, user, want - len(got), taken, now, swept=True)
        return held, got, gold_n

    def _ensure_statistics(self, conn: Connection) -> None:
        """SQLite with no statistics on round_items reads the whole round by its key for
        each overlap claim (tens of ms at 200k items, under the write lock) instead of the
        partial index of open copies: any statistics, even gathered before a copy opened,
        make it take the index. A bounded ANALYZE, once per process, when none exist."""
        has = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").first()
        if has is None or conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_stat1 WHERE tbl = 'round_items'").first() is None:
            refresh_statistics(conn, "round_items")
        self._stats_checked = True

    def _gold_span(self, conn: Connection, project_id: int) -> tuple[int, int] | None:
        """The lowest and highest gold item id of the project (None: no gold), kept
        ``SETTINGS_TTL`` seconds."""
        now = time.monotonic()
        with self._lock:
            hit = self._gold_spans.get(project_id)
        if hit is not None and now - hit[1] < SETTINGS_TTL:
            return hit[0]
        lo, hi = conn.execute(_GOLD_SPAN, {"pid": project_id}).one()
        span = None if lo is None else (int(lo), int(hi))
        with self._lock:
            self._gold_spans[project_id] = (span, now)
        return span

    def _gold(self, conn: Connection, project_id: int, user: str, n: int, exclude: list[int], now) -> list[Claim]:
        """Up to ``n`` gold items the user never labeled and was never served, served in the
        same statement that finds them (INSERT ... SELECT ... RETURNING): from a random
        point of the gold ids upwards, then from the lowest one."""
        span = self._gold_span(conn, project_id)
        if span is None:
            return []
        with self._lock:
            pivot = self._rng.randint(span[0], span[1])
        stmt = _PG_GOLD_SERVE if conn.dialect.name == "postgresql" else _GOLD_SERVE
        params = {"pid": project_id, "user": user, "n": n, "exclude": exclude or [0], "now": now,
                  "until": now + self.lease, "lo": pivot, "hi": span[1] + 1}
        ids = conn.execute(stmt, params).scalars().all()
        if len(ids) < n and pivot > span[0]:
            ids += conn.execute(stmt, {**params, "n": n - len(ids), "lo": span[0], "hi": pivot,
                                       "exclude": (exclude + ids) or [0]}).scalars().all()
        return [Claim(None, None, i, blind=True) for i in sorted(ids)]

    def _any_open(self, conn: Connection, project_id: int, user: str) -> bool:
        """Whether the user has an open serving outside round_items in the project."""
        stmt = _ANY_OPEN_SQLITE if conn.dialect.name == "sqlite" else _HELD_EXTRA
        return conn.execute(stmt, {"pid": project_id, "user": user, "n": 1}).first() is not None

    def _claim(self, conn: Connection, project_id: int, user: str, n: int, exclude: list[int],
               prefer: int | None = None) -> Claims:
        """Up to ``n`` claims: the user's open servings outside round_items first (a reload
        loses nothing), then overlap copies, fresh round items (``_claim_rounds``), and gold
        items in random slots at the project's ``gold_rate``.

        Which slots are gold is drawn first, in Python, from the cached settings; the open
        servings and the copies are then read (and on PostgreSQL served) in the one statement
        that the plain claim spends on open servings, and the gold table is touched only
        when a slot drew gold."""
        q = self.settings(conn, project_id) if n > 0 else _SETTINGS_NONE
        if n <= 0:
            return self._claim_rounds(conn, project_id, user, n, exclude, prefer)
        if q.overlap <= 0 and q.gold_rate <= 0:
            # nothing mixed in; still re-offer servings a change of settings left open
            if not self._any_open(conn, project_id, user):
                return self._claim_rounds(conn, project_id, user, n, exclude, prefer)
        now = utcnow()
        with self._lock:
            gold = [self._rng.random() < q.gold_rate for _ in range(n)] if q.gold_rate > 0 else [False] * n
        # copies are looked up only when the book says one may be this user's to take
        look = q.overlap > 0 and prefer is None and self._may_serve_copy(conn, project_id, user, exclude, now)
        if look or self._any_open(conn, project_id, user):
            held, copies, gold_n = self._held_and_copies(conn, project_id, user, gold, exclude, look, now)
        else:  # nothing held, no copy to look for: the plain path's statements
            held, copies, gold_n = [], [], sum(gold)
        want = n - len(held) - gold_n
        taken = exclude + [c.item_id for c in held + copies]
        fresh = self._claim_rounds(conn, project_id, user, want - len(copies), taken, prefer)
        taken = taken + [c.item_id for c in fresh]
        if q.overlap > 0 and prefer is not None and len(fresh) < want:
            copies = self._copies(conn, project_id, user, want - len(fresh), taken, now)
            taken = taken + [c.item_id for c in copies]
        opened = fresh.open_rounds if fresh.open_rounds is not None else self.open_rounds(conn, project_id)
        gold_claims: list[Claim] = []
        if gold_n and (held or copies or fresh or opened):  # no gold once the rounds are done
            gold_claims = self._gold(conn, project_id, user, gold_n, taken, now)
        out = Claims(held + copies + list(fresh))
        with self._lock:
            for g in gold_claims:  # each at a random place, shown in the round of a neighbour
                out.insert(self._rng.randint(0, len(out)), g)
        rid = next((c.round_id for c in out if c.round_id is not None), opened[0] if opened else None)
        for k, c in enumerate(out):
            if c.round_id is None:
                out[k] = Claim(rid, None, c.item_id, blind=True)
        out.open_rounds = opened
        return out

    def _claim_rounds(self, conn: Connection, project_id: int, user: str, n: int, exclude: list[int],
                      prefer: int | None = None) -> Claims:
        """Up to ``n`` claims of round items: the preferred round's first, then alternating
        between train and evaluation rounds."""
        out = Claims()
        now = utcnow()
        groups: dict[str, list[int]] = {}
        opened = []
        for rid, purpose in conn.execute(_OPEN_ROUNDS, {"pid": project_id}):
            groups.setdefault(purpose, []).append(rid)
            opened.append(rid)
        if prefer is not None:
            if prefer in opened:
                with self._lock:
                    self._owner[prefer] = project_id
                first = self._claim_from(conn, [prefer], user, n, exclude, now) if n > 0 else []
                out += first
                n -= len(first)
                exclude = exclude + [c.item_id for c in first]
                # what is left of it is leased to others (or it just closed): the others now
                groups = {p: [r for r in g if r != prefer] for p, g in groups.items()}
                groups = {p: g for p, g in groups.items() if g}
            else:
                self._check_round(conn, project_id, prefer)  # a closed round of the project gives nothing
        order = sorted(groups)
        if not order or n <= 0:
            out.open_rounds = opened if prefer is None else [r for r in opened if r not in self.closed]
            return out
        with self._lock:
            turn, self._turn = self._turn, self._turn + 1
        if turn % 2:
            order.reverse()
        want = {p: 0 for p in order}
        for k in range(n):
            want[order[k % len(order)]] += 1
        got = {p: self._claim_from(conn, groups[p], user, want[p], exclude, now) for p in order}
        short = n - sum(len(v) for v in got.values())
        for p in order:  # one purpose ran dry: the other makes up the difference
            if short <= 0:
                break
            if len(got[p]) == want[p]:
                more = self._claim_from(conn, groups[p], user, short,
                                        exclude + [c.item_id for c in got[p]], now)
                got[p] += more
                short -= len(more)
        for k in range(max((len(v) for v in got.values()), default=0)):
            out += [got[p][k] for p in order if k < len(got[p])]
        out.open_rounds = [r for r in opened if r not in self.closed]
        return out

    def claim(self, project_id: int, user: str, n: int = 1, exclude: Iterable[int] = (),
              then: Then | None = None, round_id: int | None = None):
        """Lease up to ``n`` (1..MAX_CLAIM) items to ``user``, skipping ids in ``exclude``;
        the pending items of ``round_id`` first when given (``UnknownRound`` when it is not
        one of the project's rounds).

        Items the user already leases are offered again (a reload loses nothing).
        Returns the claims, or ``then(conn, claims)`` run in the same transaction.
        """
        n = _check_n(n)
        exclude = list(exclude)[:100]
        return self._run(lambda conn: (None, self._claim(conn, project_id, user, n, exclude, round_id)), then)[1]

    # -- leases ----------------------------------------------------------------
    def renew(self, project_id: int, user: str, item_ids: Iterable[int] = ()) -> int:
        """Extend the user's leases in the project's open rounds (only ``item_ids`` when
        given) to ``lease_seconds`` from now; the number renewed. A lease that expired
        and went to someone else is not taken back."""
        ids = list(item_ids)[:100]
        cond = [_HELD, round_items.c.round_id.in_(_PROJECT_OPEN)]
        if ids:
            cond.append(round_items.c.item_id.in_(ids))
        mine = [_MINE] + ([ia.item_id.in_(ids)] if ids else [])
        with self._write() as conn:
            until = utcnow() + self.lease
            n = conn.execute(update(round_items).where(*cond).values(lease_expires_at=until),
                             {"user": user, "pid": project_id}).rowcount
            return n + conn.execute(update(item_assignments).where(*mine).values(lease_expires_at=until),
                                    {"user": user, "pid": project_id}).rowcount

    def release(self, user: str, project_id: int | None = None, item_ids: Iterable[int] = ()) -> int:
        """Give back the user's leases (in one project, or everywhere; only ``item_ids``
        when given) so others are offered those items at once; the number released."""
        ids = list(item_ids)[:100]
        cond = [_HELD]
        params: dict[str, Any] = {"user": user}
        if project_id is not None:
            cond.append(round_items.c.round_id.in_(_PROJECT_OPEN))
            params["pid"] = project_id
        if ids:
            cond.append(round_items.c.item_id.in_(ids))
        mine = [ia.annotator == bindparam("user"), ia.status == "pending"]
        if project_id is not None:
            mine.append(ia.project_id == bindparam("pid"))
        if ids:
            mine.append(ia.item_id.in_(ids))
        with self._write() as conn:
            n = conn.execute(update(round_items).where(*cond).values(assigned_to=None, lease_expires_at=None),
                             params).rowcount
            # an overlap copy given back goes to someone else (this person is not served it
            # again); a gold item stays the user's, offered again on their next claim
            back = conn.execute(update(item_assignments).where(*mine, ia.kind == "overlap")
                                .values(status="skipped", done_at=utcnow(), lease_expires_at=None)
                                .returning(ia.round_id, ia.rank), params).all()
            if back:
                conn.execute(_GIVE_COPY, [{"rid": b.round_id, "rk": b.rank} for b in back])
                self._forget_book(project_id)
            gold = conn.execute(update(item_assignments).where(*mine, ia.kind == "gold")
                                .values(lease_expires_at=None), params).rowcount
            return n + len(back) + gold

    # -- writing ---------------------------------------------------------------
    def _check(self, conn: Connection, project_id: int, item_id: int, class_id: int | None) -> None:
        if class_id is None:
            if conn.execute(_ITEM, {"item": item_id}).first() is None:
                raise AlsqlError(f"item_id {item_id}: no such item")
            return
        item_ok, class_ok = conn.execute(_BOTH, {"item": item_id, "pid": project_id, "cls": class_id}).one()
        if not item_ok:
            raise AlsqlError(f"item_id {item_id}: no such item")
        if not class_ok:
            names = conn.execute(select(classes.c.class_id, classes.c.name)
                                 .where(classes.c.project_id == project_id).order_by(classes.c.class_id)).all()
            raise AlsqlError(f"class_id {class_id} is not a class of project {project_id}; expected one of: "
                             + ", ".join(f"{i} ({nm})" for i, nm in names))

    def _finish(self, conn: Connection, project_id: int, item_id: int, status: str, now,
                user: str | None = None) -> list[int]:
        """Close the user's serving of the item: a serving outside round_items (``item_assignments``)
        when the user holds one, else the item's pending rows in the project's open rounds
        turn ``status``; the round ids whose pending count went down.

        The first serving of an overlapped item, labeled, opens its copies; an overlap copy
        skipped goes back to the pool."""
        if user is not None:
            served = conn.execute(_SERVED, {"pid": project_id, "item": item_id, "user": user, "status": status,
                                            "at": now}).first()
            if served is not None:
                if served.kind == "overlap" and status == "skipped":
                    conn.execute(_GIVE_COPY, {"rid": served.round_id, "rk": served.rank})
                    self._forget_book(project_id)
                return []
        opening = 0  # an overlapped item's first serving labeled: its further servings open
        if status == "labeled":
            q = self.settings(conn, project_id)
            if q.overlap > 0 and q.overlap_annotators > 1 and is_overlapped(item_id, q.overlap):
                opening = q.overlap_annotators - 1
        hit = conn.execute(_MARK_OPENING if opening else _MARK,
                           {"item": item_id, "pid": project_id, "status": status,
                            "at": now if status == "labeled" else None, "k": opening}).all()
        if opening and hit and user is not None:
            self._book_opened(project_id, hit, item_id, opening, user)
        return [h.round_id for h in hit]

    def label(self, project_id: int, user: str, item_id: int, class_id: int, seconds: float | None = None,
              claim_next: int = 0, exclude: Iterable[int] = (), then: Then | None = None,
              round_id: int | None = None):
        """Append the user's label; optionally claim the next items in the same transaction
        (``round_id``'s first when given, as in ``claim``).

        Returns ``(annotation_id, claims)``, or ``(annotation_id, then(conn, claims))``
        when ``then`` is given (read in the same transaction: one connection). Raises AlsqlError (nothing written) for an
        unknown item or a class outside the project.
        """
        claim_next = _check_n(claim_next, allow_zero=True)
        exclude = [item_id, *exclude][:100]

        def work(conn: Connection):
            self._check(conn, project_id, item_id, class_id)
            if round_id is not None:  # checked before anything is written
                self._check_round(conn, project_id, round_id)
            now = utcnow()
            (annotation_id,) = insert_annotations(conn, [{
                "project_id": project_id, "item_id": item_id, "class_id": class_id, "annotator": user,
                "created_at": now, "seconds": seconds, "source": "ui",
            }])
            hit = self._finish(conn, project_id, item_id, "labeled", now, user)
            claims = self._claim(conn, project_id, user, claim_next, exclude, round_id) if claim_next else Claims()
            self._done(hit)  # before ``then`` reads ``left``; a rollback is corrected by the TTL
            return annotation_id, claims

        return self._run(work, then)

    def skip(self, project_id: int, user: str, item_id: int, claim_next: int = 0,
             exclude: Iterable[int] = (), then: Then | None = None, round_id: int | None = None):
        """Mark the item skipped in the project's open rounds (no annotation); claim the next
        (``round_id``'s first when given, as in ``claim``)."""
        claim_next = _check_n(claim_next, allow_zero=True)
        exclude = [item_id, *exclude][:100]

        def work(conn: Connection):
            self._check(conn, project_id, item_id, None)
            if round_id is not None:
                self._check_round(conn, project_id, round_id)
            hit = self._finish(conn, project_id, item_id, "skipped", utcnow(), user)
            claims = self._claim(conn, project_id, user, claim_next, exclude, round_id) if claim_next else Claims()
            self._done(hit)  # before ``then`` reads ``left``; a rollback is corrected by the TTL
            return None, claims

        return self._run(work, then)[1]


def _check_n(n: int, allow_zero: bool = False) -> int:
    lo = 0 if allow_zero else 1
    if not isinstance(n, int) or not lo <= n <= MAX_CLAIM:
        raise AlsqlError(f"n {n!r}: expected an integer from {lo} to {MAX_CLAIM}")
    return n
