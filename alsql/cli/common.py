"""What every CLI module shares: the console, the engine, project lookup."""

from __future__ import annotations

import os
import sys
from functools import lru_cache

from rich.console import Console
from sqlalchemy import Engine

from alsql.config import Settings, get_settings, set_settings

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
    from alsql.migrations import ready_engine

    return ready_engine(get_settings().database_url)


def show_progress() -> bool:
    """Progress bars on a terminal, quiet in CI and pipes."""
    return sys.stderr.isatty() and not os.environ.get("CI")
