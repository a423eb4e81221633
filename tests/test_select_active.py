"""Active evaluation rounds on SQLite and PostgreSQL: stored inclusion probabilities and
weights, the evaluation_set view's weight, seeded draws, never in training; random
evaluation rounds store K / N and weight 1."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, func, insert, select

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.datasets import pack_f16
from alsql.models.select import create_round
from alsql.models.strategies.inclusion import active_inclusion_probs, uncertainty_for
from alsql.schema import model_versions, predictions, round_items, rounds
from alsql.schema.views import evaluation_set, training_set
from tests.conftest import add_items

N = 50
K = 10


def _setup(engine, classes=("normal", "worn", "broken")):
    """A project, N items, a model whose probabilities vary item by item."""
    with write_transaction(engine) as conn:
        proj = create_project(conn, "machines", list(classes))
    ids = add_items(engine, N)
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.full(len(classes), 0.6), size=N).astype(np.float32)
    with write_transaction(engine) as conn:
        mid = conn.execute(insert(model_versions).values(project_id=proj.project_id, architecture="cnn", params={})
                           .returning(model_versions.c.model_id)).scalar_one()
        conn.execute(insert(predictions), [
            {"model_id": mid, "item_id": i, "class_id": int(p.argmax()), "confidence": float(p.max()),
             "margin": float(np.sort(p)[-1] - np.sort(p)[-2]), "entropy": 0.5, "probs": pack_f16(p)}
            for i, p in zip(ids, probs)])
    return proj.project_id, mid, np.array(ids), probs.astype(np.float64)


def _round(engine, rid):
    with engine.connect() as conn:
        return conn.execute(select(round_items.c.item_id, round_items.c.inclusion_prob, round_items.c.weight,
                                   round_items.c.score)
                            .where(round_items.c.round_id == rid).order_by(round_items.c.rank)).all()


def test_active_round_stores_probabilities_and_weights(engine):
    pid, mid, ids, probs = _setup(engine)
    rid = create_round(engine, pid, "active", K, purpose="evaluation", seed=5)
    rows = _round(engine, rid)
    assert len(rows) == K and len({r.item_id for r in rows}) == K
    # the population's probabilities, computed again: default target 1 - confidence (float16 as stored)
    conf = np.array([float(np.float32(p.max())) for p in probs])
    pi_all = active_inclusion_probs(uncertainty_for("confidence", confidence=conf), K)
    assert pi_all.sum() == pytest.approx(K)
    by_id = dict(zip(ids.tolist(), pi_all))
    for r in rows:
        assert 0 < r.inclusion_prob <= 1
        assert r.inclusion_prob == pytest.approx(by_id[r.item_id], rel=1e-6)
        assert r.inclusion_prob >= 0.2 * K / N - 1e-12  # the uniform floor
        assert r.weight == pytest.approx((K / N) / r.inclusion_prob)
    with engine.connect() as conn:
        params = conn.execute(select(rounds.c.params, rounds.c.strategy, rounds.c.purpose)
                              .where(rounds.c.round_id == rid)).one()
    assert (params.strategy, params.purpose) == ("active", "evaluation")
    assert params.params["population"] == N and params.params["seed"] == 5
    # seeded: the same draw again once the round is gone
    with write_transaction(engine) as conn:
        conn.execute(delete(round_items).where(round_items.c.round_id == rid))
        conn.execute(delete(rounds).where(rounds.c.round_id == rid))
    again = _round(engine, create_round(engine, pid, "active", K, purpose="evaluation", seed=5))
    assert [tuple(r) for r in again] == [tuple(r) for r in rows]


def test_for_a_mart_targets_the_abnormal_classes(engine):
    pid, mid, ids, probs = _setup(engine)
    rid = create_round(engine, pid, "active", K, purpose="evaluation", seed=2, mart="maintenance_risk")
    stored = probs.astype(np.float16).astype(np.float64)  # as the blob holds them
    p = np.clip(stored[:, 1:].sum(axis=1), 0, 1)  # "normal" is class 0: the rest are abnormal
    u = np.sqrt(p * (1 - p))
    pi = dict(zip(ids.tolist(), active_inclusion_probs(u, K)))
    for r in _round(engine, rid):
        assert r.inclusion_prob == pytest.approx(pi[r.item_id], rel=1e-9)
        assert r.score == pytest.approx(u[ids.tolist().index(r.item_id)], rel=1e-9)


def test_evaluation_set_carries_the_weight_and_training_never_sees_active_items(engine):
    pid, mid, ids, probs = _setup(engine)
    rid = create_round(engine, pid, "active", K, purpose="evaluation", seed=11)
    rows = _round(engine, rid)
    train_rid = create_round(engine, pid, "random", 15, seed=1)
    train_ids = [r.item_id for r in _round(engine, train_rid)]
    picked = [r.item_id for r in rows]
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": pid, "item_id": i, "class_id": 1, "annotator": "ann",
                                   "source": "ui"} for i in picked + train_ids])
    with engine.connect() as conn:
        ev = dict(conn.execute(select(evaluation_set.c.item_id, evaluation_set.c.weight)
                               .where(evaluation_set.c.project_id == pid)).all())
        train = set(conn.execute(select(training_set.c.item_id)
                                 .where(training_set.c.project_id == pid)).scalars())
    assert ev == pytest.approx({r.item_id: r.weight for r in rows})
    assert train == set(train_ids) and not train & set(picked)


def test_random_evaluation_round_stores_k_over_n_and_weight_one(engine):
    pid, mid, ids, probs = _setup(engine)
    rid = create_round(engine, pid, "random", K, purpose="evaluation", seed=3)
    rows = _round(engine, rid)
    assert len(rows) == K
    assert all(r.inclusion_prob == pytest.approx(K / N) and r.weight == 1.0 for r in rows)
    train = _round(engine, create_round(engine, pid, "margin", 5, seed=3))
    assert all(r.inclusion_prob is None and r.weight is None for r in train)


def test_bad_active_requests_write_nothing(engine):
    pid, mid, ids, probs = _setup(engine, classes=("cat", "dog"))
    for kw, match in [
        ({"strategy": "active", "budget": 3}, "only for --purpose evaluation"),
        ({"strategy": "random", "budget": 3, "purpose": "evaluation", "mart": "maintenance_risk"},
         "only with --strategy active"),
        ({"strategy": "active", "budget": 3, "purpose": "evaluation", "mart": "nope"}, "--for 'nope': expected"),
        ({"strategy": "active", "budget": 3, "purpose": "evaluation", "mart": "defect_warranty"}, "normal class"),
        ({"strategy": "active", "budget": 3, "purpose": "evaluation", "model_id": mid + 1}, "--model"),
    ]:
        with pytest.raises(AlsqlError, match=match):
            create_round(engine, pid, **kw)
    with write_transaction(engine) as conn:
        conn.execute(delete(predictions).where(predictions.c.model_id == mid))
    with pytest.raises(AlsqlError, match="predicted no selectable item"):
        create_round(engine, pid, "active", 3, purpose="evaluation")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rounds)).scalar() == 0


@pytest.mark.sqlite
def test_cli_select_active_for_a_mart(sqlite_url):
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database
    from alsql.db import make_engine

    engine = make_engine(sqlite_url)
    _setup(engine)
    result = CliRunner().invoke(app, ["--db", sqlite_url, "select", "--project", "machines", "--strategy", "active",
                                      "--purpose", "evaluation", "--budget", "4", "--for", "defect_warranty",
                                      "--seed", "1"])
    set_database(sqlite_url)
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        weights = conn.execute(select(round_items.c.weight)).scalars().all()
    engine.dispose()
    assert len(weights) == 4 and all(w > 0 for w in weights)
    assert "(active, evaluation)" in result.output


def test_pipeline_select_step_passes_the_mart_and_seed(engine):
    from alsql.pipelines.steps import run_step

    pid, mid, ids, probs = _setup(engine)
    params = {"strategy": "active", "budget": 4, "purpose": "evaluation", "for": "intersection_safety", "seed": 4}
    first = run_step(engine, "select", pid, dict(params)).metrics["round_id"]
    with engine.connect() as conn:
        got = conn.execute(select(rounds.c.strategy, rounds.c.params).where(rounds.c.round_id == first)).one()
    assert got.strategy == "active" and got.params["for"] == "intersection_safety" and got.params["seed"] == 4
    stored = _round(engine, first)
    u = uncertainty_for("class_share", probs=probs.astype(np.float16).astype(np.float64))
    pi = dict(zip(ids.tolist(), active_inclusion_probs(u, 4)))
    assert all(r.inclusion_prob == pytest.approx(pi[r.item_id], rel=1e-9) for r in stored)


def test_normal_classes_are_the_dbt_default():
    """--for maintenance_risk / defect_warranty reads the same normal classes as the marts do."""
    import yaml

    from alsql.models.active_eval import NORMAL_CLASSES
    from alsql.pipelines.marts import PROJECT_DIR

    config = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    assert tuple(config["vars"]["normal_classes"]) == NORMAL_CLASSES
