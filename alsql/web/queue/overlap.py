"""Overlap copies: further servings of an overlapped item to other annotators.

A served copy is an ``item_assignments`` row (kind ``overlap``) and one taken from the
round item's ``copies_open``; a copy skipped, given back or expired goes back to the pool.
This process's copy book (``_CopyBook``) says when a claim needs to look copies up at
all; the user's open servings and the copy candidates are read in one statement (on
PostgreSQL it also serves them). Mixed into ``LabelQueue`` (its state: ``_lock``,
``_books``, ``_sweep_at``, ``_stats_checked``, ``lease``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, update

from alsql.loaders.writer import refresh_statistics
from alsql.schema import item_assignments
from alsql.web.queue.common import COPY_BOOK_MAX, COPY_BOOK_TTL, SWEEP_SECONDS, Claim
from alsql.web.queue.postgres import _COPIES_LOCKED, _PG_HELD_AND_COPIES, _PG_SERVE_ONE
from alsql.web.queue.sqlite import _HELD_AND_COPIES_SQLITE
from alsql.web.queue.statements import (_BOOK_COPIES, _BOOK_SEEN, _COPIES, _EXPIRED_COPIES, _GIVE_COPY,
                                        _HELD_AND_COPIES, _MINE, _SERVE_ONE, _TAKE_COPY, ia)

__all__ = ["OverlapCopies"]


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



class OverlapCopies:
    """Serving, giving back and sweeping overlap copies; the copy book."""

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
