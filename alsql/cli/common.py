"""What every CLI module shares: the console, the engine, project lookup.

Imported by every ``alsql`` call (``--help`` included), so it imports only the standard
library and rich at module level: settings, SQLAlchemy and the rest load when a command
uses them.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["console", "err_console", "get_engine", "set_database", "show_progress", "set_debug", "debug",
           "explain"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def set_database(url: str) -> None:
    """Use ``url`` for this process (the ``--db`` option)."""
    from alsql.config import Settings, set_settings

    set_settings(Settings(database_url=url))
    get_engine.cache_clear()


_debug = False


def set_debug(on: bool) -> None:
    """``--debug``: let errors through with their traceback."""
    global _debug
    _debug = on


def debug() -> bool:
    return _debug


@lru_cache(maxsize=2)
def get_engine(create: bool = False) -> Engine:
    """The configured database, checked before first use.

    A SQLite path that does not exist is refused with the command to run (only ``alsql
    init``, and ``create=True`` for the self-contained demo, create one); a directory,
    a file that is not SQLite or a read-only one is refused by name. An existing SQLite
    file without the schema is initialised; a server database that was never
    initialised is refused with the command to run.
    """
    from alsql.config import get_settings
    from alsql.db import check_sqlite_file
    from alsql.migrations import ready_engine

    url = get_settings().database_url
    check_sqlite_file(url, create=create)
    return ready_engine(url)


def explain(exc: BaseException) -> str | None:
    """One line for an everyday failure (bad input, an unreachable or unusable database,
    a refused Azure request); None for anything else (a bug keeps its traceback)."""
    from alsql.config import get_settings
    from alsql.db import describe_db_error
    from alsql.errors import AlsqlError

    if isinstance(exc, AlsqlError):
        return str(exc)
    line = describe_db_error(exc, get_settings().database_url)
    if line is not None:
        return line
    try:
        from azure.core.exceptions import AzureError, HttpResponseError
    except ImportError:  # the azure extra is not installed
        return None
    if isinstance(exc, HttpResponseError):
        return _azure_line(exc)
    if isinstance(exc, AzureError):
        return f"Azure Blob storage: {_first_line(exc.message or exc)}"
    return None


def _first_line(text) -> str:
    lines = [x.strip() for x in str(text).splitlines() if x.strip()]
    return lines[0] if lines else ""


def _azure_line(exc) -> str:
    """``Azure Blob storage refused <request url without query>: 403 AuthenticationFailed: ...``."""
    from urllib.parse import urlsplit

    target = ""
    request = getattr(getattr(exc, "response", None), "request", None)
    if request is not None and getattr(request, "url", None):
        u = urlsplit(str(request.url))
        target = f" {u.scheme}://{u.netloc}{u.path}"  # no query: it may carry a SAS token
    code = f"{exc.status_code} " if getattr(exc, "status_code", None) else ""
    code_name = getattr(exc, "error_code", None)
    error = f"{getattr(code_name, 'value', code_name)}: " if code_name else ""
    reason = _first_line(getattr(exc, "reason", None) or exc.message or exc)
    hint = ""
    if getattr(exc, "status_code", None) in (401, 403):
        hint = (" (check the account key in AZURE_STORAGE_CONNECTION_STRING or ALSQL_AZURE_CONNECTION_STRING, "
                "or the identity DefaultAzureCredential finds for ALSQL_AZURE_ACCOUNT_URL)")
    return f"Azure Blob storage refused{target}: {code}{error}{reason}{hint}"


def show_progress() -> bool:
    """Progress bars on a terminal, quiet in CI and pipes."""
    return sys.stderr.isatty() and not os.environ.get("CI")
