"""Labels and skips: the item and class checked in one statement, the label appended
through ``alsql.annotate.insert_annotations`` (source ``ui``), the user's serving closed
(a round item marked, or an ``item_assignments`` row), the next items claimed in the same
transaction. Mixed into ``LabelQueue`` (its ``_run``, ``_claim``, ``_done``, ``settings``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from alsql.annotate import insert_annotations
from alsql.errors import AlsqlError
from alsql.quality import is_overlapped
from alsql.schema import classes
from alsql.schema.tables import utcnow
from alsql.web.queue.common import Claims, Then, check_n
from alsql.web.queue.statements import _BOTH, _GIVE_COPY, _ITEM, _MARK, _MARK_OPENING, _SERVED

__all__ = ["Labeling"]


class Labeling:
    """Label or skip an item, and claim the next ones."""

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
        claim_next = check_n(claim_next, allow_zero=True)
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
        claim_next = check_n(claim_next, allow_zero=True)
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
