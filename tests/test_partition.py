"""Key chunks and the per-epoch deal to (rank, worker): pure functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alsql.errors import AlsqlError
from alsql.loaders.partition import KeySpace, chunk_count, chunk_range, chunks_for, epoch_order
from alsql.loaders.world import World


@settings(max_examples=60, deadline=None)
@given(
    lo=st.integers(1, 1000),
    span=st.integers(0, 5000),
    width=st.integers(1, 300),
    ranks=st.integers(1, 4),
    workers=st.integers(1, 4),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 50),
)
def test_consumers_cover_every_key_once(lo, span, width, ranks, workers, seed, epoch):
    space = KeySpace(lo, lo + span, width)
    n = chunk_count(space)
    consumers = ranks * workers
    seen = np.concatenate([chunks_for(n, c, consumers, seed, epoch) for c in range(consumers)])
    assert sorted(seen.tolist()) == list(range(n))
    # every key of [lo, lo + span] lies in exactly one chunk range
    hits = np.zeros(span + 1, dtype=int)
    for k in range(n):
        after, upto = chunk_range(space, k)
        top = lo + span if upto is None else upto
        hits[max(after + 1, lo) - lo : top - lo + 1] += 1
    assert (hits == 1).all()


def test_last_chunk_is_open_above():
    space = KeySpace(1, 10, 4)
    assert chunk_count(space) == 3
    assert chunk_range(space, 0) == (0, 4)
    assert chunk_range(space, 1) == (4, 8)
    assert chunk_range(space, 2) == (8, None)


def test_empty_key_space_has_no_chunks():
    assert chunk_count(KeySpace(None, None, 10)) == 0
    assert chunks_for(0, 0, 3, seed=1, epoch=0).size == 0


def test_order_depends_on_seed_and_epoch_only():
    a = epoch_order(500, seed=7, epoch=3)
    assert np.array_equal(a, epoch_order(500, seed=7, epoch=3))
    assert not np.array_equal(a, epoch_order(500, seed=7, epoch=4))
    assert not np.array_equal(a, epoch_order(500, seed=8, epoch=3))
    assert np.array_equal(epoch_order(5, seed=7, epoch=3, shuffle=False), np.arange(5))


def test_bad_arguments_are_refused():
    with pytest.raises(AlsqlError, match="chunk width"):
        KeySpace(1, 2, 0)
    with pytest.raises(AlsqlError, match="chunk 3"):
        chunk_range(KeySpace(1, 10, 4), 3)
    with pytest.raises(AlsqlError, match="consumer 3 of 3"):
        chunks_for(10, 3, 3, seed=0, epoch=0)


def test_world_override_and_consumer_index():
    w = World.detect(rank=1, world_size=2)
    assert (w.rank, w.world_size, w.worker, w.num_workers) == (1, 2, 0, 1)
    assert World(rank=1, world_size=2, worker=2, num_workers=3).consumer == 5
    assert World(rank=1, world_size=2, worker=2, num_workers=3).consumers == 6
    assert World.detect() == World()
    with pytest.raises(AlsqlError, match="rank 2 of world_size 2"):
        World.detect(rank=2, world_size=2)
    with pytest.raises(AlsqlError, match="pass both or neither"):
        World.detect(rank=0)


def test_key_space_survives_pickle():
    """Workers started by spawn or forkserver receive the dataset, key space included, by pickle."""
    import pickle

    space = KeySpace(3, 900, 64)
    back = pickle.loads(pickle.dumps(space))
    assert back == space and isinstance(back, KeySpace)
    assert (back.lo, back.hi, back.width) == (3, 900, 64)
