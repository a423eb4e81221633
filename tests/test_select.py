"""create_round: rankings from stored scores, exclusions, evaluation rounds, flat memory."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from sqlalchemy import func, insert, select, text, update

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.models.select import create_round
from alsql.schema import model_versions, predictions, round_items, rounds
from alsql.schema.views import training_set
from tests.conftest import add_items


def _model(engine, project_id) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(
            insert(model_versions).values(project_id=project_id, architecture="cnn", params={})
            .returning(model_versions.c.model_id)
        ).scalar_one()


def _predict(engine, model_id, ids, margins, entropy=None, conf=None, bald=None):
    rows = []
    for j, (i, m) in enumerate(zip(ids, margins)):
        rows.append({
            "model_id": model_id, "item_id": i, "class_id": 0,
            "confidence": conf[j] if conf is not None else 0.5 + m / 2,
            "margin": m,
            "entropy": entropy[j] if entropy is not None else 1.0 - m,
            "bald": bald[j] if bald is not None else None,
        })
    with write_transaction(engine) as conn:
        conn.execute(insert(predictions), rows)


def _picked(engine, round_id):
    with engine.connect() as conn:
        return conn.execute(
            select(round_items.c.item_id, round_items.c.score).where(round_items.c.round_id == round_id)
            .order_by(round_items.c.rank)
        ).all()


def _label(engine, project_id, ids, class_id=0):
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": project_id, "item_id": i, "class_id": class_id} for i in ids])


def test_scalar_rankings_and_exclusions(engine, project):
    pid = project.project_id
    ids = add_items(engine, 10)
    bad = add_items(engine, 1, start=100, status="corrupt")
    mid = _model(engine, pid)
    margins = [0.9, 0.1, 0.5, 0.05, 0.3, 0.7, 0.2, 0.6, 0.8, 0.4]
    _predict(engine, mid, ids + bad, margins + [0.0],
             conf=[0.3, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.95, 0.85, 0.75, 0.0],
             bald=[0.1 * i for i in range(11)])
    _label(engine, pid, [ids[3]])  # the lowest margin, but labeled
    rid = create_round(engine, pid, "margin", 3, seed=1)
    got = _picked(engine, rid)
    assert [r.item_id for r in got] == [ids[1], ids[6], ids[4]]  # corrupt and labeled skipped
    assert got[0].score == pytest.approx(0.9)
    # Items pending in that open round are not selected again.
    rid2 = create_round(engine, pid, "margin", 2, seed=1)
    assert [r.item_id for r in _picked(engine, rid2)] == [ids[9], ids[2]]
    assert [r.item_id for r in _picked(engine, create_round(engine, pid, "least_confidence", 1))] == [ids[0]]
    assert [r.item_id for r in _picked(engine, create_round(engine, pid, "bald", 1))] == [ids[8]]
    # Entropy = 1 - margin here: the highest remaining entropy is the lowest remaining margin.
    assert [r.item_id for r in _picked(engine, create_round(engine, pid, "entropy", 1))] == [ids[7]]
    # A closed round frees its unlabeled items.
    with write_transaction(engine) as conn:
        conn.execute(update(rounds).where(rounds.c.round_id == rid).values(status="closed"))
    assert [r.item_id for r in _picked(engine, create_round(engine, pid, "margin", 1))] == [ids[1]]


def test_model_rows_and_params(engine, project):
    pid = project.project_id
    ids = add_items(engine, 5)
    mid = _model(engine, pid)
    _predict(engine, mid, ids, [0.5] * 5)
    rid = create_round(engine, pid, "margin", 10, seed=7)
    with engine.connect() as conn:
        r = conn.execute(select(rounds).where(rounds.c.round_id == rid)).one()
    assert (r.model_id, r.strategy, r.purpose, r.budget, r.status) == (mid, "margin", "train", 10, "open")
    assert r.params["seed"] == 7 and r.params["selected"] == 5
    assert len(_picked(engine, rid)) == 5  # the pool is smaller than the budget


def test_bad_requests_write_nothing(engine, project):
    pid = project.project_id
    add_items(engine, 3)
    for kw, match in [
        ({"strategy": "margin", "budget": 0}, "budget"),
        ({"strategy": "nope", "budget": 2}, "unknown"),
        ({"strategy": "random", "budget": 2, "purpose": "test"}, "purpose"),
        ({"strategy": "margin", "budget": 2, "purpose": "evaluation"}, "evaluation rounds are random"),
        ({"strategy": "margin", "budget": 2}, "no trained model"),
    ]:
        with pytest.raises(AlsqlError, match=match):
            create_round(engine, pid, **kw)
    with pytest.raises(AlsqlError, match="bald"):
        mid = _model(engine, pid)
        create_round(engine, pid, "bald", 2, model_id=mid)
    with pytest.raises(AlsqlError, match="no such project"):
        create_round(engine, 999, "random", 2)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rounds)).scalar() == 0


def test_evaluation_round_is_random_and_kept_out_of_training(engine, project):
    pid = project.project_id
    ids = add_items(engine, 40)
    a = create_round(engine, pid, "random", 10, purpose="evaluation", seed=3)
    picked = [r.item_id for r in _picked(engine, a)]
    assert len(set(picked)) == 10 and set(picked) <= set(ids)
    # Same seed on the same pool: same sample (a fresh project state is not needed: compare to a twin).
    _label(engine, pid, picked)
    b = create_round(engine, pid, "random", 30, seed=3)
    rest = [r.item_id for r in _picked(engine, b)]
    assert not set(rest) & set(picked) and len(rest) == 30
    _label(engine, pid, rest)
    with engine.connect() as conn:
        train = set(conn.execute(select(training_set.c.item_id).where(training_set.c.project_id == pid)).scalars())
    assert train == set(rest)  # evaluation labels never enter training


def _populate_million(engine, project_id, n):
    with write_transaction(engine) as conn:
        conn.execute(text(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
            "INSERT INTO items (item_id, uri, status, ingested_at) "
            "SELECT i, 'file:///big/' || i, 'ok', CURRENT_TIMESTAMP FROM s"
        ), {"n": n})
        mid = conn.execute(
            insert(model_versions).values(project_id=project_id, architecture="cnn", params={})
            .returning(model_versions.c.model_id)
        ).scalar_one()
        conn.execute(text(
            "INSERT INTO predictions (model_id, item_id, class_id, confidence, margin, entropy) "
            "SELECT :m, item_id, 0, ((item_id * 7919) % 1000003) / 1000003.0, "
            "((item_id * 104729) % 1000003) / 1000003.0, ((item_id * 31) % 1000) / 1000.0 FROM items"
        ), {"m": mid})
    return mid


@pytest.mark.slow
@pytest.mark.sqlite
def test_select_over_a_million_predictions_keeps_memory_flat(sqlite_url, tmp_path):
    import psutil

    from alsql.catalog import create_project
    from alsql.db import make_engine

    engine = make_engine(sqlite_url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "big", ["a", "b"]).project_id
    n = int(os.environ.get("ALSQL_TEST_BIG_N", "1000000"))
    _populate_million(engine, pid, n)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(predictions)).scalar() == n
    proc = psutil.Process()
    create_round(engine, pid, "margin", 10, seed=0)  # warm the caches and imports
    for strategy in ("margin", "entropy", "least_confidence", "random"):
        rss0 = proc.memory_info().rss
        tracemalloc.start()
        rid = create_round(engine, pid, strategy, 500, seed=1)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        growth = proc.memory_info().rss - rss0
        # 1M predictions as Python rows would take hundreds of MB; a top-k query a few.
        assert peak < 16 * 2**20, (strategy, peak)
        assert growth < 96 * 2**20, (strategy, growth)
        assert len(_picked(engine, rid)) == 500
    # The margin round really is the 500 smallest margins among the selectable items.
    with engine.connect() as conn:
        first = conn.execute(
            select(round_items.c.item_id).where(round_items.c.round_id == 2).order_by(round_items.c.rank)
        ).scalars().all()
        ref = conn.execute(
            select(predictions.c.item_id).order_by(predictions.c.margin, predictions.c.item_id).offset(10).limit(500)
        ).scalars().all()
    assert first == ref
    engine.dispose()


@pytest.mark.sqlite
def test_cli_select(sqlite_url):
    from typer.testing import CliRunner

    from alsql.catalog import create_project
    from alsql.cli import app
    from alsql.cli.common import set_database
    from alsql.db import make_engine

    engine = make_engine(sqlite_url)
    with write_transaction(engine) as conn:
        create_project(conn, "cli", ["a", "b"])
    add_items(engine, 6)
    result = CliRunner().invoke(app, ["--db", sqlite_url, "select", "--project", "cli", "--strategy", "random",
                                      "--budget", "4", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "round 1: 4 items" in result.output
    bad = CliRunner().invoke(app, ["--db", sqlite_url, "select", "--project", "cli", "--strategy", "margin",
                                   "--budget", "4"])
    assert bad.exit_code != 0 and "no trained model" in str(bad.exception)
    set_database(sqlite_url)
    engine.dispose()
