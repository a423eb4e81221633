"""Selection that stays bounded on big pools: one model's key range, probed random samples,
labeled embeddings keyed on the labeled ids, and the same batch picks as before on small pools.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects import mssql

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.loaders.writer import PredictionWriter, analyze_tables
from alsql.models import pool as pool_mod
from alsql.models.pool import labeled_embedding_chunks, probe_sample, random_sample, selectable
from alsql.models.select import create_round, scalar_query, select_items
from alsql.models.strategies import get_strategy
from alsql.schema import embeddings, items, model_versions, round_items, rounds
from tests.conftest import add_items


def _model(engine, project_id) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(project_id=project_id, architecture="cnn")
                            .returning(model_versions.c.model_id)).scalar_one()


def _write(engine, mid, ids, seed=0, dim=8):
    rng = np.random.default_rng(seed)
    ids = np.asarray(ids)
    p = rng.dirichlet(np.ones(4), size=len(ids))
    top = np.sort(p, axis=1)
    with PredictionWriter(engine, mid) as w:
        w.write(item_ids=ids, class_id=p.argmax(1), confidence=top[:, -1], margin=top[:, -1] - top[:, -2],
                entropy=-(p * np.log(p)).sum(1), probs=p)
    with PredictionWriter(engine, mid, kind="embeddings") as w:
        w.write(item_ids=ids, vector=rng.normal(size=(len(ids), dim)) + 5.0)


def _label(engine, project_id, ids, class_id=0):
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": project_id, "item_id": int(i), "class_id": class_id} for i in ids])


def test_scalar_query_reads_one_models_range_after_a_bulk_write(engine, project):
    """No manual ANALYZE: ingest's and the writer's statistics refresh and the plan do the work."""
    pid = project.project_id
    ids = add_items(engine, 20_000)
    analyze_tables(engine, "items", "sources")  # what ingest() does at its end (add_items stands in for it)
    big, small = _model(engine, pid), _model(engine, pid)
    _write(engine, big, ids)
    _write(engine, small, ids[:2000], seed=1)
    _label(engine, pid, ids[:50])
    q = scalar_query(pid, small, get_strategy("margin"), 100, 2 * 100 + 1000)
    with engine.connect() as conn:
        sql = str(q.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            plan = "\n".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "SEARCH predictions USING PRIMARY KEY (model_id=?)" in plan, plan
            assert "SCAN items" not in plan and "SCAN selectable_item" not in plan, plan
        else:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "Index Scan on pk_predictions" in plan or "Index Scan using pk_predictions" in plan, plan
            assert "Seq Scan on items" not in plan and "Seq Scan on predictions" not in plan, plan
        got = conn.execute(q).all()
    assert len(got) == 100 and all(i not in set(ids[:50]) for i, _ in got)
    assert [s for _, s in got] == sorted(s for _, s in got)  # margin ascending


def test_scalar_query_compiles_to_tsql_top():
    sql = str(scalar_query(1, 2, get_strategy("entropy"), 10, 1020).compile(dialect=mssql.dialect()))
    assert sql.count("SELECT TOP") == 2 and "ORDER BY ranked.score DESC, ranked.item_id" in sql
    assert "ORDER BY predictions.entropy DESC, predictions.item_id" in sql


def test_scalar_selection_widens_past_a_labeled_top(engine, project):
    """When labeled items fill the first top-m, the query widens and still finds the next best."""
    pid = project.project_id
    ids = add_items(engine, 1500)
    mid = _model(engine, pid)
    _write(engine, mid, ids)
    with engine.connect() as conn:
        order = [i for i, _ in conn.execute(scalar_query(pid, mid, get_strategy("margin"), 1500, None)).all()]
    _label(engine, pid, order[:1100])  # more than 2k + 1000 of the best for k = 3
    got, _, _ = select_items(engine, pid, "margin", 3, mid)
    assert got.tolist() == order[1100:1103]


def _pool_setup(engine, project):
    pid = project.project_id
    ids = add_items(engine, 3000)
    add_items(engine, 200, start=10_000, status="corrupt")
    _label(engine, pid, ids[::3])
    with write_transaction(engine) as conn:
        rid = conn.execute(insert(rounds).values(project_id=pid, strategy="random", purpose="train", budget=5,
                                                 status="open").returning(rounds.c.round_id)).scalar_one()
        conn.execute(insert(round_items), [{"round_id": rid, "rank": r, "item_id": ids[1 + 3 * r], "status": "pending"}
                                           for r in range(100)])
    with engine.connect() as conn:
        ok = set(conn.execute(select(items.c.item_id).where(selectable(pid, items.c.item_id))).scalars())
    return pid, ok


def test_probe_sample_is_seeded_uniform_and_selectable(engine, project, monkeypatch):
    pid, ok = _pool_setup(engine, project)
    monkeypatch.setattr(pool_mod, "PROBE_MIN_SPAN", 0)  # probe even this small pool
    with engine.connect() as conn:
        a = probe_sample(conn, pid, 300, seed=7)
        assert len(a) == 300 and len(set(a.tolist())) == 300 and set(a.tolist()) <= ok
        assert probe_sample(conn, pid, 300, seed=7).tolist() == a.tolist()
        assert probe_sample(conn, pid, 300, seed=8).tolist() != a.tolist()
        # Uniform: over many seeds every selectable item turns up about equally often.
        counts = np.zeros(max(ok) + 1)
        for seed in range(40):
            counts[probe_sample(conn, pid, 300, seed=seed)] += 1
        hit = counts[sorted(ok)]
        assert hit.mean() == pytest.approx(40 * 300 / len(ok))
        assert hit.std() < 3 * np.sqrt(hit.mean())
        # More than the pool holds: the exact stream gives the whole pool.
        assert set(probe_sample(conn, pid, len(ok) + 10, seed=1).tolist()) == ok


def test_random_round_on_a_probed_pool(engine, project, monkeypatch):
    pid, ok = _pool_setup(engine, project)
    monkeypatch.setattr(pool_mod, "PROBE_MIN_SPAN", 0)
    rid = create_round(engine, pid, "random", 50, seed=3)
    with engine.connect() as conn:
        got = conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars().all()
    assert len(got) == 50 and set(got) <= ok


def test_small_pool_sample_is_the_reservoir(engine, project):
    """Below the probing span the sample is exactly the old streamed reservoir."""
    pid, ok = _pool_setup(engine, project)
    with engine.connect() as conn:
        old = random_sample(conn, select(items.c.item_id).where(selectable(pid, items.c.item_id))
                            .order_by(items.c.item_id), 40, 5)
        assert probe_sample(conn, pid, 40, seed=5).tolist() == old.tolist()


def _old_labeled_chunks(conn, project_id, model_id):
    """The former reader: every embedding of the model joined to training_set."""
    from alsql.schema.views import training_set

    rows = conn.execute(
        select(embeddings.c.item_id, embeddings.c.vector)
        .select_from(embeddings.join(training_set, training_set.c.item_id == embeddings.c.item_id))
        .where(embeddings.c.model_id == model_id, training_set.c.project_id == project_id)
        .order_by(embeddings.c.item_id)
    ).all()
    return pool_mod.unpack_vectors([r.vector for r in rows])


def test_labeled_embeddings_keyed_on_labeled_ids(engine, project):
    pid = project.project_id
    ids = add_items(engine, 600)
    mid = _model(engine, pid)
    _write(engine, mid, ids[:500])  # the last 100 items have no embedding
    _label(engine, pid, ids[::4])
    with engine.connect() as conn:
        new = np.concatenate(list(labeled_embedding_chunks(conn, pid, mid, chunk=37)))
        assert np.array_equal(new, _old_labeled_chunks(conn, pid, mid))
        assert len(new) == len(ids[:500:4])


@pytest.mark.parametrize("strategy", ["coreset", "badge", "cluster_margin", "typiclust"])
def test_batch_picks_on_a_small_pool_match_the_in_memory_strategy(engine, project, strategy):
    """Pool smaller than M: every selectable item is a candidate; picks equal the strategy over all of them."""
    from alsql.models.pool import read_candidates
    from alsql.models.strategies import Candidates

    pid = project.project_id
    ids = add_items(engine, 400)
    mid = _model(engine, pid)
    _write(engine, mid, ids)
    _label(engine, pid, ids[:40])
    got, score, _ = select_items(engine, pid, strategy, 20, mid, seed=11, candidates=1000)
    with engine.connect() as conn:
        data = read_candidates(conn, mid, np.array(ids[40:]), True, True)
        lab = list(labeled_embedding_chunks(conn, pid, mid))
    cands = Candidates(data["item_ids"], data["probs"], data["embeddings"],
                       {c: data[c] for c in ("confidence", "margin", "entropy", "bald")},
                       (lambda: iter(lab)) if "labeled" in get_strategy(strategy).needs else None, 40)
    idx, ref_score = get_strategy(strategy).select(cands, 20, np.random.default_rng(11))
    assert got.tolist() == cands.item_ids[idx].tolist()
    assert np.allclose(score, ref_score)
