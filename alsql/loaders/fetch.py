"""Concurrent, bounded blob fetching with retry and backoff, in order.

``fetch_decoded(rows, decode, workers=...)`` reads the blob of each
``(item_id, uri, label)`` row with ``workers`` reads in flight (and at most as many finished ones waiting), decodes the
bytes in the reading thread as soon as they arrive, and yields
``(row, decoded)`` in the order of ``rows`` (deterministic for a given input order).

- A transient error (timeout, connection reset, an OS error, HTTP 408/429/5xx) is
  retried ``retries`` times with exponential backoff and jitter, then raised as
  AlsqlError naming the URI.
- A missing blob (``BlobMissing``) is reported to ``on_bad(item_id, "missing", why)``
  and skipped; one the store refuses to read (``BlobRefused``: not a regular file, over
  a cap) and bytes that ``decode`` refuses are reported as ``"corrupt"`` and skipped.
  Nothing else is swallowed.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from alsql.errors import AlsqlError
from alsql.stores import BlobMissing, BlobRefused, store_for

__all__ = ["CORRUPT", "MISSING", "SKIP", "is_transient", "read_with_retry", "fetch_decoded", "settled_in_order"]

T = TypeVar("T")
Row = tuple  # (item_id, uri, label)
MISSING, CORRUPT = "missing", "corrupt"
SKIP = object()  # an outcome value meaning: yield nothing for this row, report nothing
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_NAMES = {"ServiceRequestError", "ServiceResponseError", "ServiceRequestTimeoutError", "ServiceResponseTimeoutError"}


def is_transient(exc: BaseException) -> bool:
    """Whether a read that raised ``exc`` is worth trying again."""
    if isinstance(exc, BlobMissing):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if getattr(exc, "status_code", None) in _TRANSIENT_STATUS:
        return True
    if any(k.__name__ in _TRANSIENT_NAMES for k in type(exc).__mro__):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, (PermissionError, IsADirectoryError))


def read_with_retry(uri: str, retries: int = 3, backoff: float = 0.05, sleep: Callable[[float], None] = time.sleep) -> bytes:
    """The bytes of ``uri``; transient errors retried with delays ``backoff * 2**k`` (+ up to 50% jitter)."""
    store = store_for(uri)
    for attempt in range(retries + 1):
        try:
            return store.open(uri)
        except BlobMissing:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted into transient or not just below
            if not is_transient(exc):
                raise
            if attempt == retries:
                raise AlsqlError(f"blob {uri!r}: still failing after {retries} retries: {exc.__class__.__name__}: {exc}") from exc
            sleep(backoff * 2**attempt * (1 + 0.5 * random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def fetch_decoded(
    rows: Iterable[Row],
    decode: Callable[[bytes], T],
    *,
    workers: int = 16,
    retries: int = 3,
    backoff: float = 0.05,
    on_bad: Callable[[int, str, str], None] | None = None,
) -> Iterator[tuple[Row, T]]:
    """``(row, decode(bytes))`` for each row whose blob exists and decodes, in input order.

    ``decode`` must raise (any Exception) for bytes it cannot read; that marks the
    item corrupt. ``workers <= 1`` reads inline in the calling thread.
    """

    def one(row: Row) -> Any:
        item_id, uri = row[0], row[1]
        try:
            data = read_with_retry(uri, retries, backoff)
        except BlobMissing as exc:
            return (MISSING, f"blob missing: {exc}")
        except BlobRefused as exc:  # a FIFO, device or oversize object: never read
            return (CORRUPT, f"refused: {exc}"[:500])
        try:
            return (None, decode(data))
        except Exception as exc:  # noqa: BLE001 - undecodable bytes of any kind are "corrupt"
            return (CORRUPT, f"{exc.__class__.__name__}: {exc}"[:500])

    yield from settled_in_order(rows, one, workers=workers, on_bad=on_bad, name="alsql-fetch")


def settled_in_order(rows: Iterable[Row], one: Callable[[Row], tuple[str | None, Any]], *, workers: int,
                     on_bad: Callable[[int, str, str], None] | None = None,
                     name: str = "alsql-read") -> Iterator[tuple[Row, Any]]:
    """``(row, value)`` for each row whose ``one(row)`` is ``(None, value)``, in the order of ``rows``.

    ``one`` answers ``(status, value)``: status None is a result; ``MISSING`` or ``CORRUPT``
    with a reason is reported to ``on_bad(item_id, status, reason)`` and skipped; a value of
    ``SKIP`` is skipped silently. ``workers`` > 1 runs that many calls at once in threads
    with at most as many finished ones waiting; ``workers <= 1`` runs inline.
    """

    def settle(row: Row, outcome: tuple[str | None, Any]) -> Any:
        status, value = outcome
        if status is None:
            return value
        if on_bad is not None:
            on_bad(row[0], status, value)
        return SKIP

    if workers <= 1:
        for row in rows:
            value = settle(row, one(row))
            if value is not SKIP:
                yield row, value
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    window: deque = deque()
    try:
        for row in rows:
            window.append((row, pool.submit(one, row)))
            if len(window) >= 2 * workers:  # finished calls wait here while ``workers`` stay in flight
                head, fut = window.popleft()
                value = settle(head, fut.result())
                if value is not SKIP:
                    yield head, value
        while window:
            head, fut = window.popleft()
            value = settle(head, fut.result())
            if value is not SKIP:
                yield head, value
    finally:
        for _, fut in window:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
