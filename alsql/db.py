"""Engines per backend and the few dialect helpers everything else uses.

- SQLite: WAL, foreign keys on, ``synchronous=NORMAL``, a busy timeout, and
  ``write_transaction`` starts ``BEGIN IMMEDIATE`` so concurrent writers queue
  instead of failing half-way.
- PostgreSQL: psycopg 3 (``postgresql://`` is read as ``postgresql+psycopg://``).
- SQL Server / Azure SQL: ``mssql+pyodbc`` with ``fast_executemany``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError

from alsql.errors import AlsqlError

__all__ = [
    "SUPPORTED_SCHEMES",
    "normalize_url",
    "make_engine",
    "write_transaction",
    "dialect_name",
    "redact",
    "sqlite_path",
    "check_sqlite_file",
    "describe_db_error",
]

_IMMEDIATE = "alsql_immediate"


# The backends alsql runs on, as a user writes their URLs (in messages).
SUPPORTED_SCHEMES = ("sqlite:///FILE.db", "postgresql://USER@HOST/DB", "mssql://USER@DSN")
_BACKENDS = ("sqlite", "postgresql", "postgres", "mssql")


def _mask(text: str) -> str:
    """A URL that could not be parsed, with its user and password (all before ``@``) hidden."""
    head, at, host = text.rpartition("@")
    if not at:
        return text
    return f"{head[: head.find('//') + 2] if '//' in head else ''}***@{host}"


def normalize_url(url: str | URL) -> URL:
    """Pick the driver alsql uses for each backend.

    AlsqlError naming the URL (password hidden) and the supported schemes when ``url``
    is not a URL or names a backend alsql does not run on (``mysql://``, ``oracle://``).
    """
    if isinstance(url, str):
        try:
            u = make_url(url)
        except ArgumentError:
            raise AlsqlError(f"database {_mask(url)!r}: not a database URL; expected one of "
                             f"{', '.join(SUPPORTED_SCHEMES)}") from None
    else:
        u = url
    if u.drivername.partition("+")[0] not in _BACKENDS:
        raise AlsqlError(f"database {u.render_as_string(hide_password=True)}: unsupported scheme "
                         f"{u.drivername}://; expected one of {', '.join(SUPPORTED_SCHEMES)}")
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername == "mssql":
        u = u.set(drivername="mssql+pyodbc")
    return u


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    return normalize_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL; None for other backends and in-memory databases."""
    u = normalize_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        return None
    return Path(u.database).expanduser()


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(url: str | URL, create: bool = False) -> None:
    """Refuse a SQLite path that cannot hold the database, naming it and the cause.

    AlsqlError when the path is a directory, a file that is not SQLite, a file (or its
    folder) alsql cannot write, or, unless ``create``, does not exist (only ``alsql
    init`` creates a database). Other backends and in-memory databases pass.
    """
    path = sqlite_path(url)
    if path is None:
        return
    where = f"database {redact(url)}"
    if path.is_dir():
        raise AlsqlError(f"{where}: is a directory; expected an SQLite file")
    if not path.exists():
        if create:
            return
        raise AlsqlError(f"{where}: no such file; run `alsql init` to create it (or pass --db with an existing one)")
    if not path.is_file():
        raise AlsqlError(f"{where}: is not a regular file; expected an SQLite file")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise AlsqlError(f"{where}: cannot read the file: {exc.strerror or exc}") from None
    if head and head != _SQLITE_MAGIC:
        raise AlsqlError(f"{where}: the file is not an SQLite database (no SQLite header)")
    if not os.access(path, os.W_OK):
        raise AlsqlError(f"{where}: the file is read-only; alsql needs write access to it")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise AlsqlError(
            f"{where}: its folder {path.parent} is read-only; SQLite writes its write-ahead log "
            f"beside the file, so alsql needs write access to the folder too"
        )


def describe_db_error(exc: BaseException, url: str | URL) -> str | None:
    """One line naming the database (password hidden) and why it cannot be used.

    For errors of reaching or opening the database (SQLAlchemy's OperationalError,
    InterfaceError, and a bare DatabaseError such as "file is not a database"); None
    for anything else, e.g. an IntegrityError, which is a bug to show in full.
    """
    from sqlalchemy.exc import DatabaseError, InterfaceError, OperationalError

    # Reaching and opening the database; constraint and SQL errors (bugs) keep their traceback.
    if not (isinstance(exc, (OperationalError, InterfaceError)) or type(exc) is DatabaseError):
        return None
    u = normalize_url(url)
    raw = " ".join(str(exc.orig if exc.orig is not None else exc).split())
    low = raw.lower()
    if "fatal:" in low:
        cause = raw[low.rindex("fatal:") + len("fatal:"):].strip()
    elif "connection refused" in low:
        cause = (f"connection refused at {u.host or 'localhost'} port {u.port or 'default'} "
                 f"(is the server running there and accepting TCP/IP connections?)")
    elif "readonly database" in low or "read-only" in low:
        cause = "the file is read-only; alsql needs write access to the file and its folder"
    elif "file is not a database" in low:
        cause = "the file is not an SQLite database"
    elif "unable to open database file" in low:
        cause = "unable to open the file (a directory, or a folder that does not exist or is not writable?)"
    else:
        cause = raw.removeprefix("connection failed: ")
        if len(cause) > 300:
            cause = cause[:300] + "..."
    if "connection" in low:
        cause = f"cannot connect: {cause}"
    return f"database {redact(u)}: {cause}"


def dialect_name(bind: Engine | Connection) -> str:
    """``sqlite``, ``postgresql`` or ``mssql``."""
    return bind.dialect.name


SQLITE_PAGE_SIZE = 16384


def _sqlite_engine(url: URL, **kw: Any) -> Engine:
    engine = create_engine(url, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - driver callback
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own handling is lazy).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # Takes effect only on a new, empty file (an existing database keeps its page size).
        # WITHOUT ROWID rows over about a quarter of a page spill to an overflow page: at
        # 16 KB a float16 vector of up to 2,000 dimensions (768-d is 1,536 bytes) stays in
        # its row, where at SQLite's 4 KB default each one took a mostly empty 4 KB page.
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
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
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(u, **kw)
    if backend == "mssql":
        kw.setdefault("fast_executemany", True)
        return _create(u, **kw)
    kw.setdefault("pool_pre_ping", True)
    return _create(u, **kw)


def _create(u: URL, **kw: Any) -> Engine:
    """``create_engine``; a driver whose module is not installed is one AlsqlError."""
    try:
        return create_engine(u, **kw)
    except ImportError as exc:
        raise AlsqlError(f"database {redact(u)}: the driver {u.drivername} needs the Python module "
                         f"{exc.name or exc}, which is not installed") from None


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
