"""PredictionWriter: bulk upserts, idempotency, kill mid-flush, SQL Server MERGE compiled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from alsql.db import make_engine, write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.datasets import unpack_f16
from alsql.loaders.writer import PredictionWriter, mssql_merge, stage_table
from alsql.schema import embeddings, model_versions, predictions
from tests.conftest import add_items


def _model(engine, project) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(
            insert(model_versions).values(project_id=project.project_id, architecture="cnn")
            .returning(model_versions.c.model_id)
        ).scalar_one()


def _batch(ids, seed=0, classes=5):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(classes), size=len(ids))
    top = np.sort(p, axis=1)
    return dict(
        item_ids=np.asarray(ids), class_id=p.argmax(1), confidence=top[:, -1], margin=top[:, -1] - top[:, -2],
        entropy=-(p * np.log(p)).sum(1), probs=p,
    )


def test_upsert_overwrites_and_stores_f16(engine, project):
    ids = add_items(engine, 300)
    mid = _model(engine, project)
    first, second = _batch(ids, 0), _batch(ids[100:], 1)
    second["bald"] = np.where(np.arange(200) % 2 == 0, np.nan, 0.5)
    with PredictionWriter(engine, mid, buffer_rows=128) as w:
        w.write(**first)
        w.write(**second)  # same items again in the same run: the last write wins
    assert w.rows_written >= 300
    with PredictionWriter(engine, mid) as w:  # a re-run overwrites, adds nothing
        w.write(**second)
    with engine.connect() as conn:
        rows = conn.execute(select(predictions).order_by(predictions.c.item_id)).mappings().all()
    assert len(rows) == 300
    by_id = {r["item_id"]: r for r in rows}
    for k, i in enumerate(ids):
        src, j = (first, k) if k < 100 else (second, k - 100)
        r = by_id[i]
        assert r["class_id"] == src["class_id"][j]
        assert r["confidence"] == pytest.approx(src["confidence"][j])
        assert np.allclose(unpack_f16(r["probs"]), src["probs"][j].astype(np.float16))
        if k >= 100:
            assert r["bald"] is None if j % 2 == 0 else r["bald"] == 0.5


def test_embeddings_writer(engine, project):
    ids = add_items(engine, 50)
    mid = _model(engine, project)
    vec = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    with PredictionWriter(engine, mid, kind="embeddings") as w:
        w.write(item_ids=ids[::-1], vector=vec[::-1], x=np.arange(50.0), y=None)
    with engine.connect() as conn:
        rows = conn.execute(select(embeddings).order_by(embeddings.c.item_id)).mappings().all()
    assert [r["item_id"] for r in rows] == ids
    assert np.allclose(unpack_f16(rows[0]["vector"]), vec[0].astype(np.float16))
    assert rows[0]["x"] == 49.0 and rows[0]["y"] is None


def test_bad_input_is_refused_before_writing(engine, project):
    mid = _model(engine, project)
    with pytest.raises(AlsqlError, match="kind 'logits'"):
        PredictionWriter(engine, mid, kind="logits")
    w = PredictionWriter(engine, mid)
    with pytest.raises(AlsqlError, match="'margin' has 2 rows, item_ids has 3"):
        w.write(item_ids=[1, 2, 3], class_id=[0, 0, 0], confidence=[1, 1, 1], margin=[0, 0], entropy=[0, 0, 0])
    with pytest.raises(AlsqlError, match="column 'entropy' is required"):
        w.write(item_ids=[1], class_id=[0], confidence=[1], margin=[0])
    with pytest.raises(AlsqlError, match="unknown column"):
        w.write(item_ids=[1], logits=[0])
    assert w.flush() == 0


def test_mssql_merge_compiles_to_tsql():
    stage = stage_table("predictions", "#alsql_stage_predictions")
    sql = str(mssql_merge("predictions", stage).compile(dialect=mssql.dialect()))
    assert sql.startswith("MERGE predictions WITH (HOLDLOCK) AS t USING [#alsql_stage_predictions] AS s")
    assert "ON t.model_id = s.model_id AND t.item_id = s.item_id" in sql
    assert "WHEN MATCHED THEN UPDATE SET class_id = s.class_id" in sql and "probs = s.probs" in sql
    assert "WHEN NOT MATCHED THEN INSERT (model_id, item_id, class_id" in sql and sql.endswith(");")
    ddl = str(CreateTable(stage).compile(dialect=mssql.dialect()))
    assert "CREATE TABLE [#alsql_stage_predictions]" in ddl and "VARBINARY(max)" in ddl
    with pytest.raises(NotImplementedError):
        str(mssql_merge("predictions", stage).compile(dialect=engine_dialect("sqlite")))


def engine_dialect(name):
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect()


_CHILD = textwrap.dedent("""
    import sys, time, numpy as np
    from sqlalchemy import event, text
    from alsql.db import make_engine
    from alsql.loaders.writer import PredictionWriter
    url, mid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = make_engine(url)
    ids = np.arange(1, n + 1)
    rows = dict(item_ids=ids, class_id=ids % 5, confidence=np.full(n, .9), margin=np.full(n, .5),
                entropy=np.full(n, .1), probs=np.full((n, 5), .2))
    half = dict((k, v[: n // 2]) for k, v in rows.items())
    with PredictionWriter(engine, mid, buffer_rows=10**9) as w:
        w.write(**half)
        w.flush()                       # the first half commits
        print("committed", flush=True)
        if engine.dialect.name == "sqlite":
            # stall inside the second flush's executemany, half-way through its rows
            @event.listens_for(engine, "before_cursor_execute")
            def stall(conn, cursor, statement, parameters, context, executemany):
                if executemany:
                    def gen():
                        for i, p in enumerate(parameters):
                            if i == len(parameters) // 2:
                                print("mid-flush", flush=True); time.sleep(600)
                            yield p
                    cursor.executemany(statement, gen())
                    time.sleep(600)
        else:
            with engine.begin() as conn:  # a statement trigger that stalls after the upsert inserted its rows
                conn.execute(text("CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
                                  "$$ BEGIN RAISE NOTICE 'x'; PERFORM pg_sleep(600); RETURN NULL; END $$"))
                conn.execute(text("CREATE TRIGGER stall AFTER INSERT ON predictions "
                                  "FOR EACH STATEMENT EXECUTE FUNCTION stall()"))
            print("mid-flush", flush=True)
        w.write(**dict((k, v[n // 2:]) for k, v in rows.items()))
        w.flush()
""")


def test_kill_mid_flush_leaves_no_partial_batch(db_url, engine, project, tmp_path):
    n = 20_000
    add_items(engine, n)
    mid = _model(engine, project)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    child = subprocess.Popen([sys.executable, str(script), db_url, str(mid), str(n)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "committed"
        assert child.stdout.readline().strip() == "mid-flush"
        if engine.dialect.name == "postgresql":
            deadline = time.time() + 60  # wait until the upsert sits in its trigger, rows inserted
            while time.time() < deadline:
                with engine.connect() as conn:
                    if conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")).scalar():
                        break
                time.sleep(0.05)
            else:
                pytest.fail("the child never reached the stalled upsert")
        else:
            time.sleep(0.5)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # the server notices the dead client: end its session now
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE wait_event = 'PgSleep' AND datname = current_database()"))
            conn.execute(text("DROP TRIGGER stall ON predictions"))
    engine.dispose()
    fresh = make_engine(db_url)
    with fresh.connect() as conn:
        count = conn.execute(select(func.count()).select_from(predictions)).scalar()
        top = conn.execute(select(func.max(predictions.c.item_id))).scalar()
    fresh.dispose()
    assert count == n // 2 and top == n // 2  # the first flush, all of it; none of the killed one


def test_network_class_beside_the_decision(engine, project):
    """A guarded model's rows keep the network's own argmax beside the decision (first writes and
    upserts alike); an unguarded model's rows leave it NULL."""
    ids = add_items(engine, 200)
    guarded, plain = _model(engine, project), _model(engine, project)
    b = _batch(ids, 2, classes=3)
    decided = (b["class_id"] + 1) % 3  # the collapse guard's decision, moved off the argmax
    with PredictionWriter(engine, guarded) as w:
        w.write(**dict(b, class_id=decided, network_class_id=b["class_id"]))
    with PredictionWriter(engine, guarded) as w:  # a re-run over stored rows: the upsert path
        w.write(**dict(b, item_ids=b["item_ids"][:50], class_id=decided[:50], network_class_id=b["class_id"][:50],
                       confidence=b["confidence"][:50], margin=b["margin"][:50], entropy=b["entropy"][:50],
                       probs=b["probs"][:50]))
    with PredictionWriter(engine, plain) as w:
        w.write(**b)
    with engine.connect() as conn:
        rows = conn.execute(select(predictions.c.model_id, predictions.c.item_id, predictions.c.class_id,
                                   predictions.c.network_class_id).order_by(predictions.c.item_id)).all()
    got = {(r.model_id, r.item_id): (r.class_id, r.network_class_id) for r in rows}
    for k, i in enumerate(ids):
        assert got[(guarded, i)] == (decided[k], b["class_id"][k])
        assert got[(plain, i)] == (b["class_id"][k], None)
