"""model_performance and fairness_by_group weight each evaluation item by its weight, on
SQLite and PostgreSQL: with an active evaluation round they equal a Python weighted
reference; with every weight 1 they are exactly the plain ratios of counts (today's
figures)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from sqlalchemy import insert, select, text, update

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import make_engine, write_transaction
from alsql.loaders.datasets import pack_f16
from alsql.models.select import create_round
from alsql.pipelines.marts import MARTS_SCHEMA, build
from alsql.schema import items, model_versions, predictions, round_items
from alsql.schema.views import evaluation_set

pytestmark = pytest.mark.slow
CLASSES = ["ok", "scratch", "dent"]
N = 60


def _populate(engine) -> int:
    """A project of N items on 4 entities, a model right about 70% of the time, a random
    evaluation round of 12 and an active one of 15, all labeled; returns the model id."""
    rng = np.random.default_rng(3)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "parts", CLASSES).project_id
        ids = conn.execute(insert(items).returning(items.c.item_id), [
            {"uri": f"file:///parts/{i:04d}.png", "sha256": f"{i + 1:064x}", "media_type": "image/png",
             "status": "ok", "entity": f"line-{i % 4}"} for i in range(N)]).scalars().all()
        mid = conn.execute(insert(model_versions).values(project_id=pid, architecture="cnn", params={})
                           .returning(model_versions.c.model_id)).scalar_one()
        truth = rng.integers(0, 3, size=N)
        probs = rng.dirichlet(np.ones(3), size=N)
        pred = np.where(rng.random(N) < 0.7, truth, rng.integers(0, 3, size=N))
        conn.execute(insert(predictions), [
            {"model_id": mid, "item_id": i, "class_id": int(p), "confidence": float(pr.max()), "margin": 0.1,
             "entropy": 0.5, "probs": pack_f16(pr)} for i, p, pr in zip(ids, pred, probs)])
    truth_of = dict(zip(ids, truth.tolist()))
    for strategy, k, seed in (("random", 12, 1), ("active", 15, 2)):
        rid = create_round(engine, pid, strategy, k, purpose="evaluation", seed=seed)
        with write_transaction(engine) as conn:
            picked = conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars().all()
            insert_annotations(conn, [{"project_id": pid, "item_id": i, "class_id": truth_of[i], "annotator": "ann",
                                       "source": "ui"} for i in picked])
    return mid


def _reference(engine, mid):
    """Weighted accuracy, per-class precision and recall, and per-entity accuracy, from the raw rows."""
    with engine.connect() as conn:
        ev = conn.execute(select(evaluation_set.c.item_id, evaluation_set.c.class_id, evaluation_set.c.weight,
                                 evaluation_set.c.entity)).all()
        pred = dict(conn.execute(select(predictions.c.item_id, predictions.c.class_id)
                                 .where(predictions.c.model_id == mid)).all())
    w = {r.item_id: r.weight for r in ev}
    ok = {r.item_id: pred[r.item_id] == r.class_id for r in ev}
    acc = sum(w[i] * ok[i] for i in w) / sum(w.values())
    prec, rec = {}, {}
    for c in range(len(CLASSES)):
        tp = sum(r.weight for r in ev if r.class_id == c and pred[r.item_id] == c)
        npred = sum(r.weight for r in ev if pred[r.item_id] == c)
        sup = sum(r.weight for r in ev if r.class_id == c)
        prec[c] = tp / npred if npred else None
        rec[c] = tp / sup if sup else None
    ent = defaultdict(lambda: [0.0, 0.0])
    ent_class = defaultdict(lambda: [0.0, 0.0])
    for r in ev:
        ent[r.entity][0] += r.weight * ok[r.item_id]
        ent[r.entity][1] += r.weight
        ent_class[(r.entity, r.class_id)][0] += r.weight * ok[r.item_id]
        ent_class[(r.entity, r.class_id)][1] += r.weight
    by_entity = {e: a / b for e, (a, b) in ent.items()}
    return acc, prec, rec, by_entity, {k: a / b for k, (a, b) in ent_class.items()}


def _marts(engine):
    schema = "" if engine.dialect.name == "sqlite" else f"{MARTS_SCHEMA}."
    with engine.connect() as conn:
        perf = [dict(r._mapping) for r in conn.execute(text(f"select * from {schema}model_performance"))]
        fair = [dict(r._mapping) for r in conn.execute(text(
            f"select * from {schema}fairness_by_group where group_kind = 'entity'"))]
    return perf, fair


def _close(a, b):
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))


def _check(url, work_dir):
    engine = make_engine(url)
    try:
        mid = _populate(engine)
        with engine.connect() as conn:
            weights = conn.execute(select(evaluation_set.c.weight)).scalars().all()
        assert len(weights) == 27 and len(set(weights)) > 2  # the active round's weights vary
        result = build(url, select=["model_performance", "fairness_by_group"], work_dir=work_dir)
        assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
        acc, prec, rec, by_entity, recall = _reference(engine, mid)
        perf, fair = _marts(engine)
        assert len(perf) == len(CLASSES)
        for r in perf:
            assert _close(r["accuracy"], acc)
            assert _close(r["class_precision"], prec[r["class_id"]]) and _close(r["class_recall"], rec[r["class_id"]])
            assert r["eval_items"] == 27 and math.isclose(r["eval_weight"], sum(weights), rel_tol=1e-12)
        assert {r["group_value"] for r in fair} == set(by_entity)
        for r in fair:
            assert _close(r["accuracy"], by_entity[r["group_value"]])
            assert _close(r["recall"], recall.get((r["group_value"], r["class_id"])))
            assert _close(r["overall_accuracy"], acc)
        # Every weight 1: exactly the ratios of the counts, as before weights.
        with write_transaction(engine) as conn:
            conn.execute(update(round_items).values(weight=None))
        result = build(url, select=["model_performance", "fairness_by_group"], work_dir=work_dir)
        assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
        perf, fair = _marts(engine)
        acc1, _p, _r, by_entity1, recall1 = _reference(engine, mid)
        for r in perf:
            assert r["accuracy"] == r["correct"] / r["eval_items"] == acc1
            assert r["class_precision"] == (r["true_positives"] / r["predicted"] if r["predicted"] else None)
            assert r["class_recall"] == (r["true_positives"] / r["support"] if r["support"] else None)
            assert r["eval_weight"] == r["eval_items"]
        for r in fair:
            assert r["accuracy"] == by_entity1[r["group_value"]]
            assert r["recall"] == recall1.get((r["group_value"], r["class_id"]))
        assert acc1 != acc  # the weights did change the figure
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_weighted_figures_sqlite(tmp_path):
    from alsql.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    _check(url, tmp_path / "dbt")


@pytest.mark.postgres
def test_weighted_figures_postgres(pg_url, tmp_path):
    _check(pg_url, tmp_path / "dbt")
