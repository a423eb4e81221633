"""Key-space chunks and the per-epoch deal of chunks to consumers: pure functions.

The key space ``(lo - 1, hi]`` of a view's clustered key (``item_id``) is cut into
``n`` chunks of ``width`` keys each; chunk ``k`` holds the keys in
``(lo - 1 + k * width, lo - 1 + (k + 1) * width]``, and the last chunk is open above
(keys added after the bounds were read still belong to exactly one chunk).
Each epoch a permutation seeded by ``(seed, epoch)`` orders the chunks and consumer
``c`` of ``C`` takes every ``C``-th chunk of it starting at ``c``: consumers read
disjoint chunks that together cover the key space once. Memory: one int64 per chunk.
"""

from __future__ import annotations

import numpy as np

from alsql.errors import AlsqlError

__all__ = ["KeySpace", "chunk_count", "chunk_range", "epoch_order", "chunks_for", "shuffle_rng"]


class KeySpace(tuple):
    """``(lo, hi, width)``: the smallest and largest key seen and the keys per chunk."""

    __slots__ = ()

    def __new__(cls, lo: int | None, hi: int | None, width: int):
        if width < 1:
            raise AlsqlError(f"chunk width {width}: expected a positive number of keys per chunk")
        return super().__new__(cls, (lo, hi, int(width)))

    def __getnewargs__(self):
        # Pickle rebuilds through __new__(lo, hi, width): datasets reach DataLoader workers
        # started by spawn or forkserver.
        return tuple(self)

    lo = property(lambda self: self[0])
    hi = property(lambda self: self[1])
    width = property(lambda self: self[2])


def chunk_count(space: KeySpace) -> int:
    """Number of chunks (0 for an empty key space)."""
    lo, hi, width = space
    if lo is None or hi is None or hi < lo:
        return 0
    return (hi - lo) // width + 1


def chunk_range(space: KeySpace, k: int) -> tuple[int, int | None]:
    """``(after, upto)`` of chunk ``k``: keys ``after < key <= upto``; ``upto`` is None for the last."""
    n = chunk_count(space)
    if not 0 <= k < n:
        raise AlsqlError(f"chunk {k}: expected 0 <= chunk < {n}")
    after = space.lo - 1 + k * space.width
    return after, (None if k == n - 1 else after + space.width)


def epoch_order(n_chunks: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The chunk order of one epoch: a permutation of ``range(n_chunks)`` from ``(seed, epoch)``."""
    if not shuffle:
        return np.arange(n_chunks, dtype=np.int64)
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n_chunks).astype(np.int64)


def chunks_for(n_chunks: int, consumer: int, consumers: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The chunks consumer ``consumer`` of ``consumers`` reads this epoch, in reading order."""
    if not 0 <= consumer < consumers:
        raise AlsqlError(f"consumer {consumer} of {consumers}: expected 0 <= consumer < consumers")
    return epoch_order(n_chunks, seed, epoch, shuffle)[consumer::consumers]


def shuffle_rng(seed: int, epoch: int, consumer: int) -> np.random.Generator:
    """The generator of one consumer's shuffle buffer in one epoch."""
    return np.random.default_rng([seed, epoch, consumer, 0xB0FF])
