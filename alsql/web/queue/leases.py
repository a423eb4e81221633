"""Leases: renewing a user's leases (the labeling page's heartbeat) and giving them back
(page closed, logout). Mixed into ``LabelQueue`` (its ``_write``, ``_forget_book``,
``lease``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, update

from alsql.schema import item_assignments, round_items
from alsql.schema.tables import utcnow
from alsql.web.queue.statements import _GIVE_COPY, _HELD, _MINE, _PROJECT_OPEN, ia

__all__ = ["Leases"]


class Leases:
    """Renew and release a user's leases."""

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
