"""The label queue's PostgreSQL statements: candidate rows locked ``FOR UPDATE SKIP LOCKED``
(claimers never wait on each other), found and leased or served in one statement
(``UPDATE ... RETURNING``, data-modifying CTEs), servings inserted ``ON CONFLICT DO
NOTHING``. Built from the statements of ``statements``; internal to ``alsql.web.queue``."""

from __future__ import annotations

from sqlalchemy import bindparam, case, literal_column, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from alsql.schema import item_assignments, round_items
from alsql.web.queue.statements import (_COPIES, _FREE, _GOLD_SERVE_ROWS, _OFFER_AGAIN, _SERVING_COLUMNS,
                                        _copies_select, _serving, ia)

# PostgreSQL: the free rows locked (SKIP LOCKED: claimers never wait on each other) and
# leased by one UPDATE ... RETURNING. The CTE is MATERIALIZED: evaluated once, so the
# rows this very UPDATE changes are not skipped and replaced by the next ones.
_FREE_LOCKED = _FREE.with_for_update(skip_locked=True).cte("free_rows").prefix_with("MATERIALIZED")
_FREE_AND_LEASE = (
    update(round_items)
    .where(round_items.c.round_id == bindparam("rid"), round_items.c.rank == _FREE_LOCKED.c.rank)
    .values(assigned_to=bindparam("user"), lease_expires_at=bindparam("until"))
    .returning(round_items.c.rank, round_items.c.item_id)
)
_COPIES_LOCKED = _COPIES.with_for_update(skip_locked=True, of=round_items)


def _pg_held_and_copies():
    """``_HELD_AND_COPIES`` in one statement that also serves the copies: candidates locked
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
_PG_GOLD_SERVE = (pg_insert(item_assignments).from_select(_SERVING_COLUMNS, _GOLD_SERVE_ROWS)
                  .on_conflict_do_nothing().returning(ia.item_id))
_PG_SERVE_ONE = pg_insert(item_assignments).on_conflict_do_nothing().returning(ia.item_id)
