"""Inference overheads removed: claim workers divide the cores, refresh statistics once,
and items travel as uint8 tensors converted once per batch (to the same floats)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import insert, select, text

from alsql.loaders import writer as writer_module
from alsql.loaders.datasets import as_float, to_tensor, to_uint8_tensor
from alsql.loaders.writer import PredictionWriter
from alsql.models.infer import cpu_cores, share_cores
from alsql.pipelines.claims import local_workers, run_claims
from alsql.pipelines.leases import utcnow, worker_id
from alsql.schema.pipelines import work_chunks
from test_claims import _ok_items, _trained


def test_share_cores_divides_and_never_goes_below_one():
    assert share_cores(1, cores=2) == 2
    assert share_cores(2, cores=2) == 1
    assert share_cores(3, cores=2) == 1
    assert share_cores(2, cores=16) == 8
    assert share_cores(0, cores=4) == 4
    assert share_cores(1) == cpu_cores() >= 1


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_uint8_items_become_the_same_floats_per_batch(mode):
    rng = np.random.default_rng(0)
    shape = (17, 23, 3) if mode == "RGB" else (17, 23)
    imgs = [Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode) for _ in range(4)]
    ref = torch.stack([to_tensor(im) for im in imgs])
    items = [to_uint8_tensor(im) for im in imgs]
    assert all(t.dtype == torch.uint8 and t.is_contiguous() for t in items)
    batch = as_float(torch.stack(items))
    assert batch.dtype == torch.float32 and batch.shape == ref.shape
    assert torch.equal(batch, ref)  # bit for bit
    assert as_float(ref) is ref  # float batches (video, audio) pass through


def _stat_tables(engine) -> set[str]:
    with engine.connect() as conn:
        if not conn.execute(text("select 1 from sqlite_master where name = 'sqlite_stat1'")).first():
            return set()
        return {t for (t,) in conn.execute(text("select tbl from sqlite_stat1"))}


@pytest.mark.sqlite
def test_writer_refreshes_statistics_unless_told_not_to(sqlite_url, tmp_path):
    from pipeline_helpers import make_project

    from alsql.db import make_engine
    from alsql.schema import items, model_versions

    engine = make_engine(sqlite_url)
    proj, _oracle = make_project(engine, tmp_path / "png", 12)
    with engine.begin() as conn:
        mid = conn.execute(insert(model_versions).values(project_id=proj.project_id, architecture="cnn")
                           .returning(model_versions.c.model_id)).scalar_one()
        ids = np.array(conn.execute(select(items.c.item_id).order_by(items.c.item_id)).scalars().all())
        conn.execute(text("drop table if exists sqlite_stat1"))
    with PredictionWriter(engine, mid, kind="embeddings", analyze=False) as w:
        w.write(item_ids=ids, vector=np.ones((len(ids), 4), np.float32))
    assert "embeddings" not in _stat_tables(engine)
    with PredictionWriter(engine, mid, kind="embeddings") as w:
        w.write(item_ids=ids, vector=np.zeros((len(ids), 4), np.float32))
    assert "embeddings" in _stat_tables(engine)
    engine.dispose()


@pytest.mark.sqlite
def test_local_workers_counts_fresh_chunks_of_this_host(sqlite_url, tmp_path):
    engine, _proj, mid = _trained(sqlite_url, tmp_path, 40)
    now = utcnow()
    rows = [("hostA:1", "running", now), ("hostA:2", "running", now), ("hostA:2", "running", now),
            ("hostB:3", "running", now), ("hostA:4", "running", now - timedelta(seconds=600)),
            ("hostA:5", "done", now), ("host%:6", "running", now)]
    with engine.begin() as conn:
        conn.execute(insert(work_chunks), [
            {"model_id": mid, "chunk_id": k, "lo": k * 10, "hi": k * 10 + 10, "status": s, "attempts": 1,
             "lease_seconds": 60, "worker": w, "heartbeat_at": at} for k, (w, s, at) in enumerate(rows)])
    assert local_workers(engine, mid, "hostA:1", lease_seconds=60) == 2  # itself and hostA:2
    assert local_workers(engine, mid, "hostA:9", lease_seconds=60) == 3  # a new worker: 1, 2 and itself
    assert local_workers(engine, mid, "hostC:1", lease_seconds=60) == 1
    assert local_workers(engine, mid, "host%:6", lease_seconds=60) == 1  # LIKE wildcards are escaped
    engine.dispose()


@pytest.mark.sqlite
def test_claim_worker_takes_its_share_of_cores_and_analyzes_once(sqlite_url, tmp_path, monkeypatch):
    engine, proj, mid = _trained(sqlite_url, tmp_path, 90)
    from alsql.pipelines.claims import plan_chunks

    n_chunks = plan_chunks(engine, mid, chunk_items=25, lease_seconds=30)
    # Another live worker on this host holds the last chunk: this worker gets half the cores.
    host = worker_id().rsplit(":", 1)[0]
    with engine.begin() as conn:
        conn.execute(work_chunks.update().where(work_chunks.c.model_id == mid,
                                                work_chunks.c.chunk_id == n_chunks - 1)
                     .values(status="running", worker=f"{host}:999999", heartbeat_at=utcnow(), attempts=1))
    calls = []
    real = writer_module.analyze_tables
    monkeypatch.setattr(writer_module, "analyze_tables", lambda e, *t: (calls.append(t), real(e, *t)))
    before = torch.get_num_threads()
    rep = run_claims(engine, proj.name, chunk_items=25, lease_seconds=30, batch_size=16, device="cpu",
                     max_chunks=n_chunks - 1, map_method=None)
    assert rep.chunks == list(range(n_chunks - 1))
    assert rep.threads == min(before, share_cores(2))
    assert torch.get_num_threads() == before  # restored for the caller
    # One statistics refresh of both tables for the whole worker, not two per chunk.
    assert calls == [("embeddings", "predictions")]
    assert rep.items == _ok_items(engine) - _in_chunk(engine, mid, n_chunks - 1)
    engine.dispose()


def _in_chunk(engine, model_id, chunk_id) -> int:
    from sqlalchemy import func

    from alsql.schema import items

    with engine.connect() as conn:
        lo, hi = conn.execute(select(work_chunks.c.lo, work_chunks.c.hi).where(
            work_chunks.c.model_id == model_id, work_chunks.c.chunk_id == chunk_id)).one()
        return conn.execute(select(func.count()).select_from(items).where(
            items.c.status == "ok", items.c.item_id > lo, items.c.item_id <= hi)).scalar_one()
