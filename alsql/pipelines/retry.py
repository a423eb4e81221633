"""Lost database connections: retried with backoff, then given up with the error.

``is_disconnect(exc)`` says whether an exception means the connection was lost (or
the server could not be reached): a SQLAlchemy ``DBAPIError`` with
``connection_invalidated``, or an ``OperationalError`` (the DB-API class for
"server closed the connection", "could not connect", SQLite "database is locked").
``call_with_retry`` re-runs a callable on such errors with exponential backoff and
re-raises the last one when the attempts are spent; other errors pass through at
once. The callable must be safe to repeat: alsql's steps write in transactions
(a failed one leaves nothing visible) and upsert, so a repeat finishes the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

__all__ = ["is_disconnect", "call_with_retry", "backoff_delays"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_disconnect(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause chain) is a lost / refused database connection."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc, OperationalError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def backoff_delays(attempts: int, base: float, cap: float) -> list[float]:
    """The sleeps between ``attempts`` tries: ``base * 2**k`` seconds, at most ``cap``."""
    return [min(cap, base * 2**k) for k in range(max(0, attempts - 1))]


def call_with_retry(fn: Callable[..., T], *args: Any, attempts: int = 5, base: float = 0.5, cap: float = 10.0,
                    sleep: Callable[[float], None] = time.sleep,
                    on_retry: Callable[[int, BaseException, float], None] | None = None, **kw: Any) -> T:
    """``fn(*args, **kw)``, re-run after a lost connection up to ``attempts`` times in all.

    Between tries it sleeps ``base``, ``2 * base``, ... seconds (at most ``cap``) and
    calls ``on_retry(attempt, error, delay)``. The last error is re-raised.
    """
    if attempts < 1:
        raise ValueError(f"attempts {attempts}: expected at least 1")
    delays = backoff_delays(attempts, base, cap)
    for attempt in range(attempts):
        try:
            return fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not is_disconnect(exc) or attempt == attempts - 1:
                raise
            delay = delays[attempt]
            log.warning("database connection lost (%s); retry %d of %d in %.1fs",
                        exc.__class__.__name__, attempt + 1, attempts - 1, delay)
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
