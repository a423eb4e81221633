"""Gold items: items with a known (``gold``) label mixed into a claim's slots at the
project's ``gold_rate``, each served once per annotator (an ``item_assignments`` row of
kind ``gold``). Mixed into ``LabelQueue`` (its state: ``_lock``, ``_rng``, ``_gold_spans``,
``lease``)."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from alsql.web.queue.common import SETTINGS_TTL, Claim
from alsql.web.queue.postgres import _PG_GOLD_SERVE
from alsql.web.queue.statements import _GOLD_SERVE, _GOLD_SPAN

__all__ = ["GoldItems"]


class GoldItems:
    """Finding and serving gold items."""

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
