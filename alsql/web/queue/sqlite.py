"""The label queue's SQLite statements: the user's open servings read through the partial
index named (``INDEXED BY``), alone or with the overlap copy candidates. Internal to
``alsql.web.queue``."""

from __future__ import annotations

from sqlalchemy import bindparam, text

from alsql.web.queue.statements import _held_and_copies_select, ia

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
_HELD_AND_COPIES_SQLITE = _held_and_copies_select(_OFFER_AGAIN_SQLITE.subquery("held"))
