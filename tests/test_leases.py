"""Step and chunk claims: one holder at a time, stale holders taken over, SQL per dialect."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import mssql, postgresql

from alsql.db import write_transaction
from alsql.pipelines.claims import claim_chunk, finish_chunk, plan_chunks
from alsql.pipelines.leases import claim_step, locked, release_step, renew_step, step_lease, utcnow
from alsql.schema import model_versions
from alsql.schema.pipelines import leases, work_chunks
from conftest import add_items


def test_lock_sql_per_dialect():
    q = locked(select(work_chunks).where(work_chunks.c.status == "pending").limit(1), work_chunks)
    tsql = str(q.compile(dialect=mssql.dialect()))
    assert "FROM work_chunks WITH (UPDLOCK, READPAST)" in tsql and "TOP" in tsql
    assert "FOR UPDATE SKIP LOCKED" in str(q.compile(dialect=postgresql.dialect()))


def test_one_holder_then_release(engine, project):
    a = claim_step(engine, "train", project.project_id, holder="a:1", lease_seconds=60)
    assert a is not None and a.took_over is None
    assert claim_step(engine, "train", project.project_id, holder="b:2") is None
    assert claim_step(engine, "infer", project.project_id, holder="b:2") is not None  # other step: free
    assert renew_step(engine, a)
    release_step(engine, a)
    b = claim_step(engine, "train", project.project_id, holder="b:2")
    assert b is not None and b.took_over is None
    assert not renew_step(engine, a)  # a no longer holds it


def test_stale_holder_is_taken_over(engine, project):
    a = claim_step(engine, "train", project.project_id, holder="a:1", lease_seconds=5)
    with write_transaction(engine) as conn:
        conn.execute(update(leases).values(heartbeat_at=utcnow() - timedelta(seconds=6)))
    b = claim_step(engine, "train", project.project_id, holder="b:2")
    assert b is not None and b.took_over == "a:1"
    assert not renew_step(engine, a)


def test_concurrent_claims_one_winner(engine, project):
    got, barrier = [], threading.Barrier(6)

    def claim(i):
        barrier.wait()
        if claim_step(engine, "select", project.project_id, holder=f"w:{i}") is not None:
            got.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 1


def test_step_lease_context_releases(engine, project):
    with step_lease(engine, "marts", None, holder="a:1") as held:
        assert held is not None
        with step_lease(engine, "marts", None, holder="b:2") as other:
            assert other is None
    with step_lease(engine, "marts", None, holder="b:2") as again:
        assert again is not None


def _model(engine, project) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(project_id=project.project_id, architecture="cnn")
                            .returning(model_versions.c.model_id)).scalar_one()


def test_chunks_claimed_once_each_concurrently(engine, project):
    add_items(engine, 230)
    mid = _model(engine, project)
    assert plan_chunks(engine, mid, chunk_items=10) == 23
    assert plan_chunks(engine, mid, chunk_items=99) == 23  # planned once
    with engine.connect() as conn:
        spans = conn.execute(select(work_chunks.c.lo, work_chunks.c.hi).order_by(work_chunks.c.chunk_id)).all()
    assert all(a.hi == b.lo for a, b in zip(spans, spans[1:]))  # contiguous, disjoint
    claimed, lock = [], threading.Lock()

    def work(i):
        while (c := claim_chunk(engine, mid, f"w:{i}", lease_seconds=60)) is not None:
            with lock:
                claimed.append(c.chunk_id)
            assert finish_chunk(engine, c, 0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(23))


def test_stale_chunk_is_taken_over(engine, project):
    add_items(engine, 20)
    mid = _model(engine, project)
    plan_chunks(engine, mid, chunk_items=10)
    a = claim_chunk(engine, mid, "a:1", lease_seconds=5)
    b = claim_chunk(engine, mid, "b:2", lease_seconds=5)
    assert claim_chunk(engine, mid, "c:3", lease_seconds=5) is None  # both held and fresh
    with write_transaction(engine) as conn:
        conn.execute(update(work_chunks).where(work_chunks.c.chunk_id == a.chunk_id)
                     .values(heartbeat_at=utcnow() - timedelta(seconds=10)))
    c = claim_chunk(engine, mid, "c:3", lease_seconds=5)
    assert c.chunk_id == a.chunk_id and c.attempts == 2
    assert not finish_chunk(engine, a, 1)  # the silent worker's late finish is refused
    assert finish_chunk(engine, c, 1) and finish_chunk(engine, b, 1)
