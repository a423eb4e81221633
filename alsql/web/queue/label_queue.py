"""``LabelQueue``: one per app; its state, its transactions, and the claim that puts
together the user's open servings, overlap copies, fresh round items and gold items."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from alsql.db import write_transaction
from alsql.quality import QualitySettings
from alsql.schema.tables import utcnow
from alsql.web.queue.claims import RoundClaims
from alsql.web.queue.common import LEASE_SECONDS, Claim, Claims, Then, check_n
from alsql.web.queue.gold import GoldItems
from alsql.web.queue.labels import Labeling
from alsql.web.queue.leases import Leases
from alsql.web.queue.overlap import OverlapCopies, _CopyBook
from alsql.web.queue.settings import QualitySettingsCache
from alsql.web.queue.sqlite import _ANY_OPEN_SQLITE
from alsql.web.queue.statements import _HELD_EXTRA, _SETTINGS_NONE

__all__ = ["LabelQueue"]


class LabelQueue(RoundClaims, QualitySettingsCache, OverlapCopies, GoldItems, Leases, Labeling):
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

    def claim(self, project_id: int, user: str, n: int = 1, exclude: Iterable[int] = (),
              then: Then | None = None, round_id: int | None = None):
        """Lease up to ``n`` (1..MAX_CLAIM) items to ``user``, skipping ids in ``exclude``;
        the pending items of ``round_id`` first when given (``UnknownRound`` when it is not
        one of the project's rounds).

        Items the user already leases are offered again (a reload loses nothing).
        Returns the claims, or ``then(conn, claims)`` run in the same transaction.
        """
        n = check_n(n)
        exclude = list(exclude)[:100]
        return self._run(lambda conn: (None, self._claim(conn, project_id, user, n, exclude, round_id)), then)[1]
