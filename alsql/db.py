"""Engines per backend and the few dialect helpers everything else uses.

- SQLite: WAL, foreign keys on, ``synchronous=NORMAL``, a busy timeout, and
  ``write_transaction`` starts ``BEGIN IMMEDIATE`` so concurrent writers queue
  instead of failing half-way.
- PostgreSQL: psycopg 3 (``postgresql://`` is read as ``postgresql+psycopg://``).
- SQL Server / Azure SQL: ``mssql+pyodbc`` with ``fast_executemany``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL

__all__ = [
    "normalize_url",
    "make_engine",
    "write_transaction",
    "dialect_name",
    "redact",
]

_IMMEDIATE = "alsql_immediate"


def normalize_url(url: str | URL) -> URL:
    """Pick the driver alsql uses for each backend."""
    u = make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername == "mssql":
        u = u.set(drivername="mssql+pyodbc")
    return u


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    return normalize_url(url).render_as_string(hide_password=True)


def dialect_name(bind: Engine | Connection) -> str:
    """``sqlite``, ``postgresql`` or ``mssql``."""
    return bind.dialect.name


def _sqlite_engine(url: URL, **kw: Any) -> Engine:
    engine = create_engine(url, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - driver callback
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own handling is lazy).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):  # pragma: no cover - driver callback
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def make_engine(url: str | URL, **kw: Any) -> Engine:
    """An engine for ``url`` with alsql's per-backend settings."""
    u = normalize_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.database and u.database != ":memory:":
            from pathlib import Path

            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(u, **kw)
    if backend == "mssql":
        kw.setdefault("fast_executemany", True)
        return create_engine(u, **kw)
    kw.setdefault("pool_pre_ping", True)
    return create_engine(u, **kw)


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction, committed on success.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: the write lock is
    taken up front, so two writers serialize instead of one failing on upgrade.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            yield conn
