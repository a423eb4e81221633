"""The label queue's limits and the values it hands out: what a claim is, and the error for
a preferred round that is not the project's (``UnknownRound``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from alsql.errors import AlsqlError

__all__ = ["Claim", "Claims", "Then", "UnknownRound", "check_n", "COPY_BOOK_MAX", "COPY_BOOK_TTL", "LEASE_SECONDS",
           "LEFT_TTL", "LOW_REFRESH", "MAX_CLAIM", "SETTINGS_TTL", "SWEEP_SECONDS"]

LEASE_SECONDS = 120
LEFT_TTL = 5.0
MAX_CLAIM = 10
LOW_REFRESH = 64
SETTINGS_TTL = 5.0
SWEEP_SECONDS = 5.0
COPY_BOOK_TTL = 5.0
COPY_BOOK_MAX = 500


class UnknownRound(AlsqlError):
    """A preferred round that is not one of the project's rounds (the API answers 404)."""


@dataclass(frozen=True)
class Claim:
    """One leased item: where it sits in which round."""

    round_id: int | None
    rank: int | None
    item_id: int
    blind: bool = False  # served through item_assignments: show only the user's own labels


class Claims(list):
    """The claims of one request; ``open_rounds``: the project's open rounds after it."""

    open_rounds: list[int] | None = None


Then = Callable[[Connection, "list[Claim]"], Any]


def check_n(n: int, allow_zero: bool = False) -> int:
    """``n`` when it is an integer from 1 (0 with ``allow_zero``) to ``MAX_CLAIM``; else AlsqlError."""
    lo = 0 if allow_zero else 1
    if not isinstance(n, int) or not lo <= n <= MAX_CLAIM:
        raise AlsqlError(f"n {n!r}: expected an integer from {lo} to {MAX_CLAIM}")
    return n
