"""Alembic migrations shipped inside the package, and the calls that run them.

``upgrade`` / ``downgrade`` / ``current`` / ``history`` work on a live database;
``offline_sql`` renders the DDL for a dialect with no server (``alsql db sql``).
Alembic is imported by the calls that need it: ``ready_engine``, which every CLI command
that opens the database passes through, reads the version table with plain SQL.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from alsql.config import get_settings
from alsql.db import make_engine, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HERE",
    "alembic_config",
    "upgrade",
    "downgrade",
    "current",
    "heads",
    "history",
    "offline_sql",
    "OFFLINE_URLS",
]

HERE = Path(__file__).resolve().parent

OFFLINE_URLS = {
    "sqlite": "sqlite://",
    "postgresql": "postgresql+psycopg://",
    "mssql": "mssql+pyodbc://",
}


def alembic_config(url: str | None = None, stdout=None) -> Config:
    from alembic.config import Config

    # sys.stdout of the moment (Alembic's default is the one of when it was first imported)
    cfg = Config(stdout=stdout if stdout is not None else sys.stdout)
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    url = url or get_settings().database_url
    # ConfigParser interpolates '%': escape it.
    cfg.set_main_option(
        "sqlalchemy.url", normalize_url(url).render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def _run_with_engine(url: str | None, fn) -> None:
    cfg = alembic_config(url)
    engine: Engine = make_engine(cfg.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            fn(cfg)
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create or upgrade the database to ``revision``."""
    from alembic import command

    _run_with_engine(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str | None = None, revision: str = "-1") -> None:
    from alembic import command

    _run_with_engine(url, lambda cfg: command.downgrade(cfg, revision))


def current(url: str | None = None) -> str | None:
    """The revision the database is at (``None`` when not initialised)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url or get_settings().database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def ready_engine(url: str) -> Engine:
    """An engine on ``url``, initialising an embedded SQLite file on first use.

    A server database that was never initialised is refused with the command to run.
    """
    from alsql.db import redact
    from alsql.errors import AlsqlError

    engine = make_engine(url)
    if not _initialised(engine):
        if engine.dialect.name != "sqlite":
            raise AlsqlError(f"database {redact(url)} is not initialised: run `alsql init` first")
        upgrade(url)
    return engine


def _initialised(engine: Engine) -> bool:
    """Whether the database is at some revision (Alembic's version table holds a row), as
    ``current`` is not None, read without importing Alembic."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        return inspect(conn).has_table("alembic_version") and conn.execute(
            text("SELECT version_num FROM alembic_version")).first() is not None


def heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down_revision, first docstring line), oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revs = list(script.walk_revisions())
    revs.reverse()
    return [
        (r.revision, r.down_revision, (r.doc or "").strip().splitlines()[0] if r.doc else "")
        for r in revs
    ]


def offline_sql(dialect: str, revision: str = "head") -> str:
    """The DDL of every migration up to ``revision`` for ``dialect``, as text."""
    if dialect not in OFFLINE_URLS:
        from alsql.errors import AlsqlError

        raise AlsqlError(
            f"dialect {dialect!r} is not supported; expected one of {', '.join(OFFLINE_URLS)}"
        )
    from alembic import command

    buf = io.StringIO()
    cfg = alembic_config(OFFLINE_URLS[dialect], stdout=buf)
    cfg.output_buffer = buf
    with contextlib.redirect_stdout(buf):
        command.upgrade(cfg, revision, sql=True)
    return buf.getvalue()
