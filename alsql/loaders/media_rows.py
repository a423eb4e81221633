"""Decoding of media items in a DataLoader worker, one row at a time, in order.

``decoded_rows(rows, spec)`` yields ``(row, tensor)`` for each ``(item_id, uri, label)``
row whose item decodes with ``spec`` (``alsql.media.kinds.decode_item``): a missing
source is reported to ``on_bad(item_id, "missing", why)``, an undecodable segment (or a
source swapped for a link, FIFO or device, refused by the confined open) as ``"corrupt"``,
both skipped; an item of another kind than the model reads is skipped
silently; transient store errors are retried with backoff. ``workers`` > 1 decodes
that many items at once (remote stores, where ranged reads wait on the network).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from alsql.loaders.fetch import CORRUPT, MISSING, SKIP, is_transient, settled_in_order
from alsql.media.kinds import KindMismatch, MediaSpec, decode_item, kind_of, parse_fragment
from alsql.media.rangeio import is_local
from alsql.stores import BlobMissing, uri_to_path

__all__ = ["decoded_rows", "is_media_uri"]


def is_media_uri(uri: str) -> bool:
    """Whether ``uri`` names a segment of a video or sound file."""
    return "#t=" in uri and kind_of(uri) in ("video", "audio")


def _decode(row: tuple, spec: MediaSpec, retries: int, backoff: float) -> tuple[str | None, Any]:
    uri = row[1]
    source = parse_fragment(uri)[0]
    if is_local(source) and not os.path.lexists(uri_to_path(source)):  # a FIFO or link: refused below
        return MISSING, f"source file missing: {source}"
    for attempt in range(retries + 1):
        try:
            return None, decode_item(uri, spec)
        except KindMismatch:
            return None, SKIP
        except BlobMissing as exc:
            return MISSING, f"blob missing: {exc}"
        except Exception as exc:  # noqa: BLE001 - transient: retried; anything else: corrupt
            if attempt < retries and not is_local(source) and is_transient(exc):
                time.sleep(backoff * 2**attempt * (1 + 0.5 * random.random()))
                continue
            return CORRUPT, f"{exc.__class__.__name__}: {exc}"[:500]
    raise AssertionError("unreachable")  # pragma: no cover


def decoded_rows(rows: Iterable[tuple], spec: MediaSpec, *, workers: int = 1, retries: int = 3,
                 backoff: float = 0.05, on_bad: Callable[[int, str, str], None] | None = None
                 ) -> Iterator[tuple[tuple, Any]]:
    """``(row, tensor)`` per decodable row, in the order of ``rows``."""

    def one(row: tuple) -> tuple[str | None, Any]:
        return _decode(row, spec, retries, backoff)

    yield from settled_in_order(rows, one, workers=workers, on_bad=on_bad, name="alsql-media")
