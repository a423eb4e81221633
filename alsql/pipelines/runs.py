"""Recorded runs: every pipeline step leaves a row in ``runs``.

``recorded_run(engine, step, ...)`` is a context manager:

- on entry it inserts a ``runs`` row (status ``running``, trigger, params, worker
  ``host:pid``, started_at, heartbeat_at), or takes over a ``queued`` row given by
  ``run_id`` (the web app's "retrain now" queues one);
- while the block runs a heartbeat thread refreshes ``heartbeat_at`` every
  ``heartbeat_seconds``, so a run whose heartbeat stops is known to be dead;
- on exit the row becomes ``succeeded`` with the handle's ``metrics``, or ``failed``
  with the error text (the exception is re-raised). ``finished_at`` is set either way.

``retry_of`` records which failed run a retry repeats. ``cli_run`` is the same for a
CLI command (``alsql train``, ``infer``, ``select``): trigger ``cli``, and under torchrun
only rank 0 records.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ContextManager

from sqlalchemy import Engine, insert, select, update

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.pipelines.leases import Heartbeat, utcnow, worker_id
from alsql.pipelines.retry import call_with_retry
from alsql.schema import runs

__all__ = ["Run", "recorded_run", "cli_run", "mark_stale_failed", "list_runs", "get_run", "queue_run", "RUN_STATUSES"]

RUN_STATUSES = ("queued", "running", "succeeded", "failed")


@dataclass
class Run:
    """The handle a recorded run's block gets: put results in ``metrics``."""

    run_id: int
    step: str
    project_id: int | None
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
    return f"{exc.__class__.__name__}: {exc}\n{tail}"[:8000]


def _finish(engine: Engine, run_id: int, **values: Any) -> None:
    def write() -> None:
        with write_transaction(engine) as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(finished_at=utcnow(), **values))

    call_with_retry(write, attempts=4, base=0.25)


def queue_run(engine: Engine, step: str, *, project_id: int | None = None, trigger: str = "manual",
              params: dict | None = None, retry_of: int | None = None) -> int:
    """Insert a ``queued`` run for a watcher to pick up; return its id."""
    with write_transaction(engine) as conn:
        return int(conn.execute(
            insert(runs).values(project_id=project_id, step=step, trigger=trigger, status="queued",
                                params=params or {}, retry_of=retry_of, started_at=None, heartbeat_at=None)
            .returning(runs.c.run_id)
        ).scalar_one())


@contextlib.contextmanager
def recorded_run(engine: Engine, step: str, *, project_id: int | None = None, trigger: str = "manual",
                 params: dict | None = None, retry_of: int | None = None, run_id: int | None = None,
                 heartbeat_seconds: float = 10.0) -> Iterator[Run]:
    """Run the block as a recorded run of ``step`` (see the module docstring)."""
    now, me = utcnow(), worker_id()
    values = dict(project_id=project_id, step=step, trigger=trigger, status="running", params=params or {},
                  worker=me, retry_of=retry_of, started_at=now, heartbeat_at=now)
    with write_transaction(engine) as conn:
        if run_id is None:
            run_id = conn.execute(insert(runs).values(**values).returning(runs.c.run_id)).scalar_one()
        else:  # take over a queued row, keeping what it asked for
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise AlsqlError(f"run {run_id}: no such run")
            values.update(trigger=row.trigger or trigger, params=(row.params or {}) | (params or {}),
                          retry_of=row.retry_of if retry_of is None else retry_of)
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))
    run = Run(int(run_id), step, project_id, dict(values["params"]))

    def beat() -> None:
        with write_transaction(engine) as conn:
            conn.execute(update(runs).where(runs.c.run_id == run.run_id).values(heartbeat_at=utcnow()))

    try:
        with Heartbeat(beat, heartbeat_seconds):
            yield run
    except BaseException as exc:
        _finish(engine, run.run_id, status="failed", error=_error_text(exc), metrics=run.metrics or None)
        raise
    _finish(engine, run.run_id, status="succeeded", metrics=run.metrics)


def cli_run(engine: Engine, step: str, project_id: int | None, params: dict) -> ContextManager[Run]:
    """A CLI command as a recorded run of ``step`` (trigger ``cli``; ``params`` as the step's
    retry reads them). Under torchrun (``RANK`` set) ranks other than 0 record nothing and
    get a handle with run_id 0."""
    if os.environ.get("RANK", "0").strip() not in ("", "0"):
        return contextlib.nullcontext(Run(0, step, project_id, dict(params)))
    return recorded_run(engine, step, project_id=project_id, trigger="cli", params=params)


def mark_stale_failed(engine: Engine, stale_seconds: float = 120.0) -> list[int]:
    """Mark ``running`` runs whose heartbeat is older than ``stale_seconds`` as failed; return their ids."""
    from datetime import timedelta

    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    with write_transaction(engine) as conn:
        ids = list(conn.execute(
            select(runs.c.run_id).where(runs.c.status == "running", runs.c.heartbeat_at < cutoff)
        ).scalars())
        if ids:
            conn.execute(update(runs).where(runs.c.run_id.in_(ids)).values(
                status="failed", finished_at=utcnow(),
                error=f"worker stopped: no heartbeat for more than {stale_seconds:g}s"))
    return ids


def list_runs(engine: Engine, *, project_id: int | None = None, step: str | None = None,
              status: str | None = None, limit: int = 50) -> list:
    """The newest ``limit`` runs, newest first, optionally filtered."""
    q = select(runs).order_by(runs.c.run_id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(runs.c.project_id == project_id)
    if step is not None:
        q = q.where(runs.c.step == step)
    if status is not None:
        q = q.where(runs.c.status == status)
    with engine.connect() as conn:
        return conn.execute(q).all()


def get_run(engine: Engine, run_id: int):
    """The ``runs`` row ``run_id``; AlsqlError when there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise AlsqlError(f"run {run_id}: no such run (see `alsql runs list`)")
    return row
