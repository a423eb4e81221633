"""Claims of round items: the project's open rounds, train and evaluation interleaved, a
preferred round first; the items still pending (``left``); the per-process low-water mark
that makes a claim an index range scan; leases of free items; a round closed when its last
pending item is done. Mixed into ``LabelQueue`` (its state: ``_lock``, ``_low``, ``_left``,
``_since_low``, ``_owner``, ``_turn``, ``closed``, ``lease``)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select, update

from alsql.schema import round_items, rounds
from alsql.schema.tables import utcnow
from alsql.web.queue.common import LEFT_TTL, LOW_REFRESH, Claim, Claims, UnknownRound
from alsql.web.queue.postgres import _FREE_AND_LEASE
from alsql.web.queue.statements import _FIRST_PENDING, _FREE, _LEASE, _OPEN_ROUNDS, _ROUND_PROJECT

__all__ = ["RoundClaims"]


class RoundClaims:
    """Reading and claiming the round items of a project's open rounds."""

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
