"""Scale-out inference: N processes share one model's inference through chunk claims.

``plan_chunks`` cuts the model's item key space (``min(item_id) - 1 < item_id <=
max(item_id)`` of the ok items in the project's scope when planned) into chunks of ``chunk_items`` keys,
recorded in ``work_chunks`` (once per model: a second planner finds them there).
Each worker (``alsql infer --claim``, or ``run_claims``) loops: claim a chunk
(``alsql.pipelines.leases.locked``: SKIP LOCKED / READPAST / BEGIN IMMEDIATE), keep
its heartbeat fresh from a thread, score the chunk's inference queue (ok items
without a prediction of the model) through ``PredictionWriter``, mark it ``done``.
A chunk whose worker died (heartbeat older than the lease) is claimed again and its
rest scored; rows already written stay (writes are upserts), so every item ends
with exactly one prediction. A worker stops when every chunk is done, then refreshes
the planner statistics of predictions and embeddings once (not after every chunk).

Workers on one machine divide its cores: on the CPU, before each chunk a worker counts
the workers of its host (``host:pid``) holding a chunk of the model and sets its
PyTorch intra-op threads to its share (``alsql.models.infer.share_cores``), so two
workers on two cores do not run four busy threads. Each worker builds its dataset once
and points it at each chunk's key range.

Workers write embeddings without map coordinates. The 2-D map is one step after all
chunks: the worker that finds every chunk done after finishing one itself takes the
map claim (``params["map_claim"]`` of the model, set under a row lock; a claim older
than ``MAP_CLAIM_SECONDS`` is taken over) and runs ``alsql.models.maps.compute_map``
(t-SNE fitted on a sample, the rest transformed; ``map_method`` "pca" or None to skip).
So exactly one worker maps; if it dies, ``alsql map`` (or the next ``alsql infer``)
places whatever is still unmapped. Items added after planning are left to plain
``alsql infer`` (the watcher's rule).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.pipelines.leases import Heartbeat, locked, utcnow, worker_id
from alsql.schema import items, model_versions
from alsql.schema.scope import in_scope
from alsql.schema.pipelines import work_chunks

__all__ = ["Chunk", "ClaimReport", "plan_chunks", "claim_chunk", "finish_chunk", "chunk_progress", "run_claims",
           "claim_map", "local_workers", "MAP_CLAIM_SECONDS"]

log = logging.getLogger(__name__)

MAP_CLAIM_SECONDS = 3600


@dataclass(frozen=True)
class Chunk:
    """A claimed chunk: items ``lo < item_id <= hi`` of ``model_id``."""

    model_id: int
    chunk_id: int
    lo: int
    hi: int
    worker: str
    attempts: int


@dataclass
class ClaimReport:
    model_id: int
    worker: str
    chunks: list[int] = field(default_factory=list)
    items: int = 0
    took_over: int = 0
    mapped: int | None = None  # items this worker placed on the map (None: another worker maps)
    threads: int | None = None  # intra-op threads of its last chunk (CPU), its share of this host's cores


def plan_chunks(engine: Engine, model_id: int, chunk_items: int = 5000, lease_seconds: int = 60) -> int:
    """Record the model's chunks (once); return how many it has."""
    if chunk_items < 1:
        raise AlsqlError(f"--chunk-items {chunk_items}: expected a positive number of keys per chunk")
    count = select(func.count()).select_from(work_chunks).where(work_chunks.c.model_id == model_id)
    with engine.connect() as conn:
        n = conn.execute(count).scalar_one()
        if n:
            return int(n)
        project_id = conn.execute(select(model_versions.c.project_id)
                                  .where(model_versions.c.model_id == model_id)).scalar()
        if project_id is None:
            raise AlsqlError(f"--model {model_id}: no such model version")
    try:
        with write_transaction(engine) as conn:
            n = conn.execute(count).scalar_one()
            if n:
                return int(n)
            lo, hi = conn.execute(
                select(func.min(items.c.item_id), func.max(items.c.item_id))
                .where(items.c.status == "ok", in_scope(project_id, items))
            ).one()
            if lo is None:
                return 0
            rows, after, k = [], int(lo) - 1, 0
            while after < hi:
                upto = min(int(hi), after + chunk_items)
                rows.append({"model_id": model_id, "chunk_id": k, "lo": after, "hi": upto, "status": "pending",
                             "attempts": 0, "lease_seconds": lease_seconds})
                after, k = upto, k + 1
            for s in range(0, len(rows), 1000):
                conn.execute(insert(work_chunks), rows[s : s + 1000])
            return len(rows)
    except IntegrityError:  # a concurrent planner recorded them first
        with engine.connect() as conn:
            return int(conn.execute(count).scalar_one())


def claim_map(engine: Engine, model_id: int, worker: str, stale_seconds: int = MAP_CLAIM_SECONDS) -> bool:
    """Take the model's map step for ``worker`` (False when another worker holds a fresh claim)."""
    m = model_versions.c
    with write_transaction(engine) as conn:
        row = conn.execute(locked(select(m.params).where(m.model_id == model_id), model_versions)).first()
        if row is None:
            return False
        params = dict(row.params or {})
        held = params.get("map_claim") or {}
        if held and held.get("worker") != worker and time.time() - float(held.get("at", 0)) < stale_seconds:
            return False
        params["map_claim"] = {"worker": worker, "at": time.time()}
        conn.execute(update(model_versions).where(m.model_id == model_id).values(params=params))
    return True


def _release_map(engine: Engine, model_id: int) -> None:
    m = model_versions.c
    with write_transaction(engine) as conn:
        params = dict(conn.execute(select(m.params).where(m.model_id == model_id)).scalar() or {})
        params.pop("map_claim", None)
        conn.execute(update(model_versions).where(m.model_id == model_id).values(params=params))


def claim_chunk(engine: Engine, model_id: int, worker: str | None = None, lease_seconds: int = 60,
                first_only: bool = False) -> Chunk | None:
    """Claim the lowest free chunk: pending, or running with a heartbeat older than ``lease_seconds``."""
    worker = worker or worker_id()
    now = utcnow()
    cutoff = now.timestamp() - lease_seconds
    from datetime import datetime, timezone

    stale = datetime.fromtimestamp(cutoff, timezone.utc)
    w = work_chunks.c
    free = or_(w.status == "pending", and_(w.status == "running", or_(w.heartbeat_at < stale, w.heartbeat_at.is_(None))))
    q = select(work_chunks).where(w.model_id == model_id, free)
    if first_only:
        q = q.where(w.chunk_id == select(func.min(w.chunk_id)).where(w.model_id == model_id).scalar_subquery())
    with write_transaction(engine) as conn:
        row = conn.execute(locked(q.order_by(w.chunk_id).limit(1), work_chunks)).first()
        if row is None:
            return None
        if row.status == "running":
            log.warning("chunk %s of model %s: worker %s silent since %s; taking over",
                        row.chunk_id, model_id, row.worker, row.heartbeat_at)
        conn.execute(update(work_chunks).where(w.model_id == model_id, w.chunk_id == row.chunk_id).values(
            status="running", worker=worker, heartbeat_at=now, lease_seconds=lease_seconds,
            attempts=w.attempts + 1))
    return Chunk(model_id, int(row.chunk_id), int(row.lo), int(row.hi), worker, int(row.attempts) + 1)


def _touch(engine: Engine, chunk: Chunk, **values) -> int:
    w = work_chunks.c
    with write_transaction(engine) as conn:
        return conn.execute(update(work_chunks).where(
            w.model_id == chunk.model_id, w.chunk_id == chunk.chunk_id, w.worker == chunk.worker,
            w.status == "running").values(**values)).rowcount


def finish_chunk(engine: Engine, chunk: Chunk, n_items: int) -> bool:
    """Mark the chunk done (False when another worker took it over meanwhile)."""
    return _touch(engine, chunk, status="done", items=n_items, finished_at=utcnow(), heartbeat_at=utcnow()) == 1


def chunk_progress(engine: Engine, model_id: int) -> dict[str, int]:
    """``{status: chunks}`` for the model."""
    with engine.connect() as conn:
        rows = conn.execute(select(work_chunks.c.status, func.count()).where(work_chunks.c.model_id == model_id)
                            .group_by(work_chunks.c.status)).all()
    return {s: int(n) for s, n in rows}


def local_workers(engine: Engine, model_id: int, worker: str, lease_seconds: int = 60) -> int:
    """Workers on this worker's host (``host:pid``) holding a fresh chunk of the model, itself included."""
    from datetime import datetime, timezone

    w = work_chunks.c
    host = worker.rsplit(":", 1)[0]
    stale = datetime.fromtimestamp(utcnow().timestamp() - lease_seconds, timezone.utc)
    q = select(func.count(func.distinct(w.worker))).where(
        w.model_id == model_id, w.status == "running", w.heartbeat_at >= stale,
        w.worker.startswith(f"{host}:", autoescape=True), w.worker != worker)
    with engine.connect() as conn:
        return 1 + int(conn.execute(q).scalar_one())


def _chunk_dataset(engine: Engine, project_id: int, model_id: int, meta: dict):
    """One dataset for all of a worker's chunks (set ``bounds`` before each): the source
    checks, key bounds and media settings are read once, not per chunk."""
    from alsql.loaders import pager
    from alsql.loaders.datasets import SqlImageDataset, to_uint8_tensor
    from alsql.models.train import dataset_url

    class RangeDataset(SqlImageDataset):
        bounds = (0, 0)

        def rows(self):
            lo, hi = self.bounds
            return pager.iter_rows(self.engine, self.project_id, self.view, after=lo, upto=hi,
                                   model_id=self.model_id, page_rows=self.page_rows)

    return RangeDataset(dataset_url(engine), project_id, view="inference_queue", model_id=model_id, shuffle=False,
                        image_size=meta["image_size"], grayscale=meta["grayscale"], transform=to_uint8_tensor)


def _score_chunk(engine: Engine, ds, model_id: int, chunk: Chunk, net, batch_size: int, device, bald: int = 0) -> int:
    from torch.utils.data import DataLoader

    from alsql.models.infer import score_batches

    ds.bounds = (chunk.lo, chunk.hi)
    # Statistics are refreshed once when the worker is done, not after every chunk.
    return score_batches(engine, model_id, net, DataLoader(ds, batch_size=batch_size, num_workers=0), device,
                         bald=bald, analyze=False)


def _claim_loop(engine: Engine, model_id: int, report: ClaimReport, score, cpu: bool,
                lease_seconds: int, poll: float, max_chunks: int | None, threads: int) -> None:
    """Claim, score (``score(chunk) -> items written``) and finish chunks until none is left (or
    ``max_chunks`` are done).

    On the CPU, before each chunk the worker counts the workers of this host that hold a
    chunk of the model and takes its share of the cores as intra-op threads (``threads``
    at most): two workers on two cores run one thread each instead of four threads
    fighting over two cores.
    """
    import torch

    from alsql.models.infer import share_cores

    while max_chunks is None or len(report.chunks) < max_chunks:
        chunk = claim_chunk(engine, model_id, report.worker, lease_seconds)
        if chunk is None:
            prog = chunk_progress(engine, model_id)
            if prog.get("pending", 0) + prog.get("running", 0) == 0:
                break
            time.sleep(poll)  # others hold the rest; wait for them to finish or go silent
            continue
        report.took_over += chunk.attempts > 1
        if cpu:
            want = min(threads, share_cores(local_workers(engine, model_id, report.worker, lease_seconds)))
            if want != torch.get_num_threads():
                torch.set_num_threads(want)
            report.threads = want
        with Heartbeat(lambda c=chunk: _touch(engine, c, heartbeat_at=utcnow()), max(0.2, lease_seconds / 3)):
            n = score(chunk)
        if finish_chunk(engine, chunk, n):
            report.chunks.append(chunk.chunk_id)
            report.items += n


def run_claims(engine: Engine, project: str | int, model_id: int | None = None, *, chunk_items: int = 5000,
               lease_seconds: int = 60, batch_size: int = 256, device: str = "auto", poll: float = 1.0,
               worker: str | None = None, max_chunks: int | None = None, map_method: str | None = "tsne",
               map_sample: int | None = None, bald: int = 0) -> ClaimReport:
    """Claim and score chunks until every chunk of the model is done; return what this worker did.

    The worker that sees the last chunk done (having scored at least one) maps the model. A head
    model (``alsql.models.heads``) scores each chunk from its encoder's stored vectors, writes
    predictions only and maps nothing (the map is the encoder's).
    """
    import torch

    from alsql.catalog import get_project
    from alsql.loaders.writer import analyze_tables
    from alsql.models.artifacts import load_model
    from alsql.models.fit import resolve_device
    from alsql.models.head_net import check_bald, load_head
    from alsql.models.heads import is_head, mark_scored, score_range
    from alsql.models.pool import require_model

    with engine.connect() as conn:
        proj = get_project(conn, project)
        model_id = require_model(conn, proj.project_id, model_id)
        head = is_head(conn.execute(select(model_versions.c.architecture)
                                    .where(model_versions.c.model_id == model_id)).scalar())
    plan_chunks(engine, model_id, chunk_items, lease_seconds)
    report = ClaimReport(model_id, worker or worker_id())
    if head:
        hnet, hrow = load_head(engine, model_id)
        cpu = True
        check_bald(hnet, model_id, bald)

        def score(chunk: Chunk) -> int:
            return score_range(engine, model_id, chunk.lo, chunk.hi, bald=bald, analyze=False, net=hnet, row=hrow)
    else:
        net, meta, _row = load_model(engine, model_id)
        dev = resolve_device(device)
        net.to(dev)
        cpu = dev.type == "cpu"
        ds = _chunk_dataset(engine, proj.project_id, model_id, meta)

        def score(chunk: Chunk) -> int:
            return _score_chunk(engine, ds, model_id, chunk, net, batch_size, dev, bald)
    threads = torch.get_num_threads()
    try:
        _claim_loop(engine, model_id, report, score, cpu, lease_seconds, poll, max_chunks, threads)
    finally:
        torch.set_num_threads(threads)
    if report.chunks:
        from alsql.loaders.writer import KINDS

        kinds = ("predictions",) if head else ("embeddings", "predictions")
        analyze_tables(engine, *(KINDS[k][0].name for k in kinds))
        if head:
            mark_scored(engine, model_id)
    prog = chunk_progress(engine, model_id)
    all_done = prog.get("pending", 0) + prog.get("running", 0) == 0
    if map_method and not head and report.chunks and all_done and claim_map(engine, model_id, report.worker):
        from alsql.models.maps import MAP_SAMPLE, compute_map

        try:
            report.mapped = compute_map(engine, model_id, map_method, sample=map_sample or MAP_SAMPLE).placed
        finally:
            _release_map(engine, model_id)
    return report
