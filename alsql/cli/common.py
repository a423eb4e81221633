"""What every CLI module shares: the console, the engine, project lookup."""

from __future__ import annotations

import os
import sys
from functools import lru_cache

from rich.console import Console
from sqlalchemy import Engine

from alsql.config import Settings, get_settings, set_settings
from alsql.db import make_engine

__all__ = ["console", "err_console", "get_engine", "set_database", "show_progress"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def set_database(url: str) -> None:
    """Use ``url`` for this process (the ``--db`` option)."""
    set_settings(Settings(database_url=url))
    get_engine.cache_clear()


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The configured database, initialised on first use when it is an embedded SQLite file.

    A server database that was never initialised is refused with the command to run.
    """
    from alsql import migrations
    from alsql.db import redact
    from alsql.errors import AlsqlError

    url = get_settings().database_url
    engine = make_engine(url)
    if migrations.current(url) is None:
        if engine.dialect.name != "sqlite":
            raise AlsqlError(f"database {redact(url)} is not initialised: run `alsql init` first")
        migrations.upgrade(url)
    return engine


def show_progress() -> bool:
    """Progress bars on a terminal, quiet in CI and pipes."""
    return sys.stderr.isatty() and not os.environ.get("CI")
