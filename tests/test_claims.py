"""Scale-out inference through chunk claims: 3 workers, one killed with SIGKILL mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from alsql.db import make_engine

from alsql.pipelines.claims import chunk_progress, run_claims
from alsql.schema import embeddings, items, model_versions
from alsql.schema.pipelines import work_chunks
from pipeline_helpers import QUICK_TRAIN, label, make_project, prediction_counts

WORKER = """
import sys
from alsql.db import make_engine
from alsql.pipelines.claims import run_claims
r = run_claims(make_engine(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), chunk_items=20, lease_seconds=3,
               batch_size=8, device="cpu", poll=0.2)
print("chunks", r.chunks, "items", r.items, "took_over", r.took_over)
"""


def _trained(url, tmp_path, n):
    from alsql.models.fit import TrainConfig
    from alsql.models.train import train_and_record

    engine = make_engine(url)
    proj, oracle = make_project(engine, tmp_path / "png", n)
    label(engine, proj.project_id, oracle, sorted(oracle)[:40])
    out = train_and_record(engine, proj.project_id, TrainConfig(**QUICK_TRAIN), grayscale=True,
                           artifacts=str(tmp_path / "art"))
    return engine, proj, out.model_id


def _ok_items(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items).where(items.c.status == "ok")).scalar_one()


def test_single_worker_scores_every_chunk_once(sqlite_url, tmp_path):
    engine, proj, mid = _trained(sqlite_url, tmp_path, 90)
    rep = run_claims(engine, proj.name, chunk_items=25, lease_seconds=30, batch_size=16, device="cpu")
    n = _ok_items(engine)
    assert rep.model_id == mid and rep.chunks == [0, 1, 2, 3] and rep.items == n
    assert prediction_counts(engine, mid) == (n, n)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(embeddings)).scalar_one() == n
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == mid)).scalar()
    assert "map" in params  # fitted once, by the first chunk
    again = run_claims(engine, proj.name, chunk_items=25)  # all done: nothing to claim
    assert again.chunks == [] and chunk_progress(engine, mid) == {"done": 4}
    engine.dispose()


def test_infer_claim_command(sqlite_url, tmp_path):
    """`alsql infer --claim` scores through chunk claims; a second worker finds nothing left."""
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database

    engine, proj, mid = _trained(sqlite_url, tmp_path, 60)
    runner = CliRunner()
    args = ["--db", sqlite_url, "infer", "--project", proj.name, "--claim", "--chunk-items", "20",
            "--device", "cpu", "--batch-size", "16"]
    try:
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert f"model {mid}: this worker scored {_ok_items(engine)} items in 3 chunks" in first.output
        second = runner.invoke(app, args)
        assert second.exit_code == 0 and "scored 0 items in 0 chunks" in second.output
    finally:
        set_database("sqlite:///alsql.db")
    assert prediction_counts(engine, mid) == (_ok_items(engine),) * 2
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_one_killed_every_item_once(pg_url, tmp_path):
    engine, proj, mid = _trained(pg_url, tmp_path, 400)
    n = _ok_items(engine)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, pg_url, str(proj.project_id), str(mid)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    victim = procs[0]
    me = f":{victim.pid}"

    def victim_mid_chunk() -> bool:
        with engine.connect() as conn:
            mine = conn.execute(select(work_chunks.c.status).where(work_chunks.c.worker.like(f"%{me}"))).scalars().all()
            done = conn.execute(select(func.count()).where(work_chunks.c.status == "done")).scalar()
        return "running" in mine and done >= 2

    end = time.monotonic() + 240
    while not victim_mid_chunk():
        assert victim.poll() is None and time.monotonic() < end, victim.communicate()[0] if victim.poll() is not None else "timeout"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with engine.connect() as conn:
        orphan = conn.execute(select(work_chunks.c.chunk_id).where(
            work_chunks.c.worker.like(f"%{me}"), work_chunks.c.status == "running")).scalars().all()
    outs = [p.communicate(timeout=300)[0] for p in procs[1:]]
    assert all(p.returncode == 0 for p in procs[1:]), outs
    assert prediction_counts(engine, mid) == (n, n)  # every item exactly once
    with engine.connect() as conn:
        chunks = conn.execute(select(work_chunks).where(work_chunks.c.model_id == mid)).all()
        emb = conn.execute(select(func.count()).select_from(embeddings).where(embeddings.c.model_id == mid)).scalar()
    assert emb == n and all(c.status == "done" for c in chunks)
    assert not any(c.worker.endswith(me) for c in chunks if c.chunk_id in orphan)  # taken over
    assert all(c.attempts == 2 for c in chunks if c.chunk_id in orphan) and orphan
    assert "took_over 1" in "".join(outs) or "took_over 2" in "".join(outs)
    engine.dispose()
