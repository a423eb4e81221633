"""The label queue's SQL that every dialect runs, built once (bound parameters by name: the
hot path only binds values): round items (open rounds, the low-water mark, free items,
leases), the label check and the marking of round items, and the quality statements
(open servings outside round_items, overlap copies, the copy book, gold items).

PostgreSQL's own forms are in ``postgres``, SQLite's in ``sqlite``; internal to
``alsql.web.queue``."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, func, insert, literal_column, null, or_, select, union_all, update

from alsql.quality import QualitySettings
from alsql.schema import annotations, classes, item_assignments, items, round_items, rounds

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
# The user's open servings (offered again) and up to ``want`` copy candidates in ONE round
# trip, in place of the plain claim's check for open servings: with overlap on, a claim
# that serves no copy costs no more statements than one with overlap off.
_OFFER_AGAIN = (select(ia.item_id, ia.kind, ia.round_id, ia.rank)
                .where(_MINE, ia.item_id.not_in(bindparam("exclude", expanding=True)))
                .order_by(ia.assigned_at, ia.item_id).limit(bindparam("n")))


def _held_and_copies_select(held_rows):
    cand = _copies_select("want").subquery("cand")
    return union_all(
        select(literal_column("1").label("held"), held_rows.c.item_id, held_rows.c.round_id, held_rows.c.rank,
               literal_column("1").label("served")),
        select(literal_column("0"), cand.c.item_id, cand.c.round_id, cand.c.rank, literal_column("0")),
    )



_HELD_AND_COPIES = _held_and_copies_select(_OFFER_AGAIN.subquery("held"))
_SERVING_COLUMNS = ["project_id", "item_id", "annotator", "kind", "round_id", "rank", "status", "assigned_at",
                    "lease_expires_at"]


def _serving(item_id, kind: str, round_id, rank):
    """The SELECT list of a serving row inserted from a query (INSERT ... SELECT)."""
    return select(bindparam("pid", type_=ia.project_id.type), item_id, bindparam("user", type_=ia.annotator.type),
                  literal_column(f"'{kind}'"), round_id, rank, literal_column("'pending'"),
                  bindparam("now", type_=ia.assigned_at.type), bindparam("until", type_=ia.lease_expires_at.type))


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
# One serving row (values bound at execution); PostgreSQL: nothing when the user has it already.
_SERVE_ONE = insert(item_assignments)
