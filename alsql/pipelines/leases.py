"""Claims with leases: a step, or a chunk of the key space, held by one worker at a time.

A claim is a row (``leases`` for a step, ``work_chunks`` for a chunk) whose ``holder``
/ ``worker`` and ``heartbeat_at`` say who holds it and since when it was last seen
alive. Claiming reads the row under a row lock that other claimants skip instead of
waiting for:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``;
- SQL Server: ``SELECT ... FROM t WITH (UPDLOCK, READPAST)`` (checked by compiling);
- SQLite: the whole claim runs in ``BEGIN IMMEDIATE`` (``alsql.db.write_transaction``),
  so claims queue on the database write lock.

A row held by someone else is free again once its heartbeat is older than its lease
(``lease_seconds``): a crashed holder's claim is taken over. Holders renew with
``heartbeat`` (a ``Heartbeat`` thread does it on a timer). Times are UTC from the
claimant's clock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, Select, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from alsql.db import write_transaction
from alsql.schema.pipelines import leases

__all__ = [
    "worker_id", "utcnow", "as_utc", "locked", "StepLease", "claim_step", "renew_step", "release_step",
    "step_lease", "Heartbeat",
]

log = logging.getLogger(__name__)


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(t: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite gives naive ones back)."""
    if t is None:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def locked(stmt: Select, table) -> Select:
    """``stmt`` reading rows under a lock that other claimants skip (see module doc)."""
    return stmt.with_for_update(skip_locked=True).with_hint(table, "WITH (UPDLOCK, READPAST)", "mssql")


def expired(heartbeat_at: datetime | None, lease_seconds: int, now: datetime) -> bool:
    return heartbeat_at is None or as_utc(heartbeat_at) + timedelta(seconds=int(lease_seconds)) < now


@dataclass(frozen=True)
class StepLease:
    """A held step claim: ``(project_id, step)`` held by ``holder``; ``took_over`` from a stale holder."""

    project_id: int
    step: str
    holder: str
    lease_seconds: int
    took_over: str | None = None


def _ensure_row(engine: Engine, project_id: int, step: str, lease_seconds: int) -> None:
    key = and_(leases.c.project_id == project_id, leases.c.step == step)
    with engine.connect() as conn:
        if conn.execute(select(leases.c.step).where(key)).first() is not None:
            return
    try:
        with write_transaction(engine) as conn:
            if conn.execute(select(leases.c.step).where(key)).first() is None:
                conn.execute(insert(leases).values(project_id=project_id, step=step, lease_seconds=lease_seconds))
    except IntegrityError:  # another claimant inserted it first: fine
        pass


def claim_step(engine: Engine, step: str, project_id: int | None = None, *, holder: str | None = None,
               lease_seconds: int = 60, run_id: int | None = None) -> StepLease | None:
    """Claim ``step`` of ``project_id`` (None: not tied to a project); None when someone holds it.

    Free means: never held, released, held by ``holder`` itself, or held by a worker
    whose heartbeat is older than its lease (taken over; ``took_over`` names it).
    """
    pid = int(project_id or 0)
    holder = holder or worker_id()
    _ensure_row(engine, pid, step, lease_seconds)
    now = utcnow()
    with write_transaction(engine) as conn:
        row = conn.execute(
            locked(select(leases).where(leases.c.project_id == pid, leases.c.step == step), leases)
        ).first()
        if row is None:  # locked by a claimant right now
            return None
        stale = None
        if row.holder is not None and row.holder != holder:
            if not expired(row.heartbeat_at, row.lease_seconds, now):
                return None
            stale = row.holder
            log.warning("lease %s/%s: holder %s silent since %s; taking over", pid, step, row.holder, row.heartbeat_at)
        conn.execute(
            update(leases).where(leases.c.project_id == pid, leases.c.step == step)
            .values(holder=holder, run_id=run_id, lease_seconds=lease_seconds, acquired_at=now, heartbeat_at=now)
        )
    return StepLease(pid, step, holder, lease_seconds, stale)


def renew_step(engine: Engine, lease: StepLease, run_id: int | None = None) -> bool:
    """Refresh the heartbeat; False when the lease was lost (taken over)."""
    values = {"heartbeat_at": utcnow()} | ({"run_id": run_id} if run_id is not None else {})
    with write_transaction(engine) as conn:
        n = conn.execute(
            update(leases).where(leases.c.project_id == lease.project_id, leases.c.step == lease.step,
                                 leases.c.holder == lease.holder).values(**values)
        ).rowcount
    return n == 1


def release_step(engine: Engine, lease: StepLease) -> None:
    """Give the step back (only if still held by ``lease.holder``)."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(leases).where(leases.c.project_id == lease.project_id, leases.c.step == lease.step,
                                 leases.c.holder == lease.holder).values(holder=None, heartbeat_at=None)
        )


class Heartbeat:
    """A daemon thread calling ``beat()`` every ``interval`` seconds until stopped.

    Errors in ``beat`` are logged, not raised (a missed beat only shortens the lease).
    Use as a context manager.
    """

    def __init__(self, beat: Callable[[], object], interval: float) -> None:
        self.beat, self.interval = beat, float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alsql-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - a heartbeat never kills the work
                log.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def step_lease(engine: Engine, step: str, project_id: int | None = None, *, lease_seconds: int = 60,
               holder: str | None = None) -> Iterator[StepLease | None]:
    """Hold ``step`` for the block (renewed every ``lease_seconds / 3``); yields None when it is taken."""
    lease = claim_step(engine, step, project_id, holder=holder, lease_seconds=lease_seconds)
    if lease is None:
        yield None
        return
    try:
        with Heartbeat(lambda: renew_step(engine, lease), max(0.2, lease_seconds / 3)):
            yield lease
    finally:
        release_step(engine, lease)
