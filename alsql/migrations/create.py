"""Create the server database that ``alsql init`` (and ``alsql demo``) migrate.

SQLite creates its file on first connection. On PostgreSQL the database named by the
URL must exist before anything can connect to it: :func:`ensure_database` connects to
the server's ``postgres`` maintenance database as the same user and runs ``CREATE
DATABASE`` with the name quoted by the dialect's identifier preparer (no user text is
interpolated unquoted). Where the user may not create databases, or cannot reach the
maintenance database, it raises an error carrying the one command that does it
(``createdb``), to run as a user who may. Other backends are left as they are.
"""

from __future__ import annotations

import shlex

from sqlalchemy import DDL, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from alsql.db import normalize_url, redact
from alsql.errors import AlsqlError

__all__ = ["MAINTENANCE_DB", "database_missing", "createdb_command", "ensure_database"]

MAINTENANCE_DB = "postgres"


def database_missing(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` (from connecting) says PostgreSQL database ``name`` does not exist."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == "3D000":  # invalid_catalog_name
        return True
    return f'database "{name}" does not exist' in str(orig)


def createdb_command(url: str | URL) -> str:
    """The shell command that creates ``url``'s database (its host, port and user; no password)."""
    u = normalize_url(url)
    args = ["createdb"]
    if u.host:
        args += ["-h", u.host]
    if u.port:
        args += ["-p", str(u.port)]
    if u.username:
        args += ["-U", u.username]
    return " ".join(shlex.quote(a) for a in [*args, u.database or ""])


def ensure_database(url: str | URL) -> bool:
    """Create ``url``'s PostgreSQL database if it does not exist; True when it was created.

    Any other backend, or a database that exists (or that cannot be reached for another
    reason: that error is the caller's to report), returns False untouched. Refused by
    the server: AlsqlError naming the database and the ``createdb`` command to run.
    """
    u = normalize_url(url)
    if u.get_backend_name() != "postgresql" or not u.database or u.database == MAINTENANCE_DB:
        return False
    probe = create_engine(u, connect_args={"connect_timeout": 10})
    try:
        with probe.connect():
            return False
    except DBAPIError as exc:
        if not database_missing(exc, u.database):
            return False
    finally:
        probe.dispose()
    admin = create_engine(u.set(database=MAINTENANCE_DB), isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 10})
    # A DDL element: compiled and executed as SQLAlchemy executes its own DDL, so the quoted
    # name (double quotes doubled, and % for the driver's paramstyle) reaches the server whole.
    statement = DDL("CREATE DATABASE " + admin.dialect.identifier_preparer.quote_identifier(u.database))
    try:
        with admin.connect() as conn:
            conn.execute(statement)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P04":  # duplicate_database: created meanwhile
            return False
        reason = " ".join(str(exc.orig).split())[:200]
        raise AlsqlError(
            f"database {redact(u)} does not exist and could not be created ({reason}); create it as a user "
            f"who may, e.g. `{createdb_command(u)}`, then run `alsql init` again") from None
    finally:
        admin.dispose()
    return True
