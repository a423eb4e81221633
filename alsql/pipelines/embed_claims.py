"""``alsql embed --claim``: processes share one encoder version's embedding through chunk claims.

The same machinery as ``alsql infer --claim`` (``alsql.pipelines.claims``), keyed by the
encoder's ``model_id``: ``plan_chunks`` cuts the ok items' key space into chunks once;
each worker claims a chunk (SKIP LOCKED / READPAST / BEGIN IMMEDIATE), keeps its heartbeat
fresh, embeds the chunk's queue (``alsql.models.embed.embed_queue`` in ``(lo, hi]``: items
already written are not done again) and marks it done. A chunk whose worker died is claimed
again after ``lease_seconds`` and its rest embedded; writes are upserts, so every item ends
with exactly one vector. Items ingested after the plan get chunks of their own when a later
run finds every chunk done (``extend_chunks``), so ``--claim`` is incremental too. The worker
that sees the last chunk done takes the map claim and fits (or extends) the encoder's map.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from alsql.db import write_transaction
from alsql.models.embed import BATCH_SIZE, EmbedReport, prepare_embed
from alsql.models.maps import MAP_SAMPLE
from alsql.pipelines.claims import (_release_map, _touch, chunk_progress, claim_chunk, claim_map, finish_chunk,
                                    plan_chunks)
from alsql.pipelines.leases import Heartbeat, utcnow, worker_id
from alsql.schema import items
from alsql.schema.pipelines import work_chunks

__all__ = ["embed_claimed", "extend_chunks"]


def extend_chunks(engine: Engine, model_id: int, chunk_items: int = 5000, lease_seconds: int = 60) -> int:
    """Add chunks for ok items above the model's last chunk (ingested after the plan); return how many."""
    w = work_chunks.c
    try:
        with write_transaction(engine) as conn:
            last = conn.execute(select(func.max(w.hi), func.max(w.chunk_id)).where(w.model_id == model_id)).one()
            top = conn.execute(select(func.max(items.c.item_id)).where(items.c.status == "ok")).scalar()
            if last[0] is None or top is None or int(top) <= int(last[0]):
                return 0
            rows, after, k = [], int(last[0]), int(last[1]) + 1
            while after < int(top):
                upto = min(int(top), after + chunk_items)
                rows.append({"model_id": model_id, "chunk_id": k, "lo": after, "hi": upto, "status": "pending",
                             "attempts": 0, "lease_seconds": lease_seconds})
                after, k = upto, k + 1
            conn.execute(insert(work_chunks), rows)
            return len(rows)
    except IntegrityError:  # a concurrent worker added them first
        return 0


def embed_claimed(engine: Engine, project: str | int, encoder: str = "pretrained", *, weights: str | None = None,
                  dtype: str = "float16", batch_size: int = BATCH_SIZE, device: str = "auto",
                  chunk_items: int = 5000, lease_seconds: int = 60, poll: float = 1.0, worker: str | None = None,
                  max_chunks: int | None = None, map_method: str | None = "tsne", map_sample: int = MAP_SAMPLE,
                  say: Callable[[str], None] = print) -> EmbedReport:
    """Claim and embed chunks of the encoder version until every chunk is done; what this worker did."""
    from alsql.loaders.writer import analyze_tables

    t0 = time.perf_counter()
    job = prepare_embed(engine, project, encoder, weights=weights, dtype=dtype, batch_size=batch_size,
                        device=device, say=say)
    mid = job.model_id
    plan_chunks(engine, mid, chunk_items, lease_seconds)
    prog = chunk_progress(engine, mid)
    if prog.get("pending", 0) + prog.get("running", 0) == 0:
        extend_chunks(engine, mid, chunk_items, lease_seconds)
    rep = job.report()
    me = worker or worker_id()
    while max_chunks is None or len(rep.chunks) < max_chunks:
        chunk = claim_chunk(engine, mid, me, lease_seconds)
        if chunk is None:
            prog = chunk_progress(engine, mid)
            if prog.get("pending", 0) + prog.get("running", 0) == 0:
                break
            time.sleep(poll)  # others hold the rest: wait for them to finish or go silent
            continue
        with Heartbeat(lambda c=chunk: _touch(engine, c, heartbeat_at=utcnow()), max(0.2, lease_seconds / 3)):
            n, bad = job.run(chunk.lo, chunk.hi, analyze=False)
        if finish_chunk(engine, chunk, n):
            rep.chunks.append(chunk.chunk_id)
            rep.items += n
            rep.bad += bad
    if rep.chunks:
        analyze_tables(engine, "embeddings")
    prog = chunk_progress(engine, mid)
    if map_method and rep.chunks and prog.get("pending", 0) + prog.get("running", 0) == 0 \
            and claim_map(engine, mid, me):
        try:
            rep.map = job.map(map_method, map_sample)
        finally:
            _release_map(engine, mid)
    rep.seconds = time.perf_counter() - t0
    return rep
