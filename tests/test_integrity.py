"""Integrity without foreign keys: the writer refuses a batch naming a missing item or model.

predictions and embeddings carry their clustered key only (migration 0005); each
PredictionWriter flush checks its model and item ids set-wise and writes all or nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, insert, inspect, select

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.writer import PredictionWriter, missing_item_ids
from alsql.schema import embeddings, model_versions, predictions
from tests.conftest import add_items


def _model(engine, project) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(project_id=project.project_id, architecture="cnn")
                            .returning(model_versions.c.model_id)).scalar_one()


def _preds(ids, value=0.5):
    n = len(ids)
    p = np.full((n, 3), 1 / 3)
    return dict(item_ids=np.asarray(ids), class_id=np.zeros(n, int), confidence=np.full(n, value),
                margin=np.full(n, value), entropy=np.full(n, value), probs=p)


def _rows(engine, table, mid):
    with engine.connect() as conn:
        value = table.c.margin if "margin" in table.c else table.c.vector
        return dict(conn.execute(select(table.c.item_id, value).where(table.c.model_id == mid)).all())


def test_tables_carry_their_clustered_key_only(engine):
    insp = inspect(engine)
    for table in ("predictions", "embeddings"):
        assert insp.get_foreign_keys(table) == []
        assert insp.get_indexes(table) == []
        assert insp.get_pk_constraint(table)["constrained_columns"] == ["model_id", "item_id"]


@pytest.mark.parametrize("gap", [1, 10_000], ids=["dense", "sparse"])
def test_prediction_for_a_missing_item_is_refused_whole(engine, project, gap):
    ids = add_items(engine, 200)
    mid = _model(engine, project)
    with PredictionWriter(engine, mid) as w:  # a first batch, committed
        w.write(**_preds(ids[:100], 0.25))
    before = _rows(engine, predictions, mid)
    missing = max(ids) + gap
    bad = ids[50:] + [missing]  # overwrites 50 stored rows, adds 100 new ones, and one missing item
    with pytest.raises(AlsqlError, match=rf"1 item id\(s\) not in items \({missing}\).*nothing of this batch"):
        with PredictionWriter(engine, mid) as w:
            w.write(**_preds(bad, 0.75))
    assert _rows(engine, predictions, mid) == before  # nothing partial: no new row, no overwrite


def test_prediction_for_a_missing_model_is_refused(engine, project):
    ids = add_items(engine, 20)
    with pytest.raises(AlsqlError, match=r"model 424242 is not in model_versions; nothing of this batch"):
        with PredictionWriter(engine, 424242) as w:
            w.write(**_preds(ids))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(predictions)).scalar() == 0


def test_embedding_for_a_missing_item_or_model_is_refused(engine, project):
    ids = add_items(engine, 30)
    mid = _model(engine, project)
    vec = np.ones((31, 4), np.float32)
    with pytest.raises(AlsqlError, match=r"embeddings writer.*not in items"):
        with PredictionWriter(engine, mid, kind="embeddings") as w:
            w.write(item_ids=ids + [max(ids) + 5], vector=vec)
    with pytest.raises(AlsqlError, match=r"embeddings writer: model"):
        with PredictionWriter(engine, mid + 1, kind="embeddings") as w:
            w.write(item_ids=ids, vector=vec[:30])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(embeddings)).scalar() == 0
    with PredictionWriter(engine, mid, kind="embeddings") as w:  # the good rows alone go in
        w.write(item_ids=ids, vector=vec[:30])
    assert sorted(_rows(engine, embeddings, mid)) == ids


def test_missing_item_ids_names_every_gap(engine):
    ids = np.array(add_items(engine, 50), dtype=np.int64)
    probe = np.sort(np.concatenate([ids[::2], [ids.max() + 1, ids.max() + 3]]))
    with engine.connect() as conn:
        assert missing_item_ids(conn, probe).tolist() == [ids.max() + 1, ids.max() + 3]
        sparse = np.array([ids[0], ids.max() + 10**6])
        assert missing_item_ids(conn, sparse).tolist() == [ids.max() + 10**6]
        assert missing_item_ids(conn, ids).tolist() == []


@pytest.mark.postgres
def test_postgres_direct_copy_falls_back_to_the_upsert(pg_url, monkeypatch):
    """A first write COPYs straight into the table; if rows appeared meanwhile (a concurrent
    writer), the unique violation rolls back to the savepoint and the batch is upserted."""
    import sqlalchemy.engine.base as base

    from alsql.catalog import create_project
    from alsql.db import make_engine

    engine = make_engine(pg_url)
    with write_transaction(engine) as conn:
        project = create_project(conn, "p", ["a", "b"])
    ids = add_items(engine, 100)
    mid = _model(engine, project)
    with PredictionWriter(engine, mid) as w:
        w.write(**_preds(ids, 0.25))
    real, lied = base.Connection.execute, []

    def probe_says_empty(self, stmt, *a, **k):  # the "nothing stored in the span" probe misses the rows
        result = real(self, stmt, *a, **k)
        if not lied and "FROM predictions" in str(stmt) and "LIMIT" in str(stmt):
            lied.append(True)
            return type("Empty", (), {"first": lambda _self: None})()
        return result

    monkeypatch.setattr(base.Connection, "execute", probe_says_empty)
    with PredictionWriter(engine, mid) as w:
        w.write(**_preds(ids, 0.75))
    monkeypatch.undo()
    assert lied
    assert set(_rows(engine, predictions, mid).values()) == {0.75} and len(_rows(engine, predictions, mid)) == 100
    engine.dispose()
