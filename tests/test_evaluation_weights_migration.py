"""Revision 0008 (evaluation weights) up and down with data in place, on SQLite and
PostgreSQL: round items gain inclusion_prob and weight, evaluation_set gains weight
(1 where NULL), and the downgrade drops both and gives the view back its old columns."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from alsql import migrations
from alsql.db import make_engine
from alsql.schema.views import create_view_sql, view_selects


def _seed_0007(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (project_id, name, created_at) VALUES (1, 'p', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO classes (project_id, class_id, name, display_order) VALUES (1, 0, 'a', 0), "
                          "(1, 1, 'b', 1)"))
        conn.execute(text("INSERT INTO items (item_id, uri, status, ingested_at) VALUES "
                          "(1, 'file:///x/1.png', 'ok', CURRENT_TIMESTAMP), (2, 'file:///x/2.png', 'ok', CURRENT_TIMESTAMP), "
                          "(3, 'file:///x/3.png', 'ok', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO rounds (round_id, project_id, strategy, purpose, budget, status, created_at) "
                          "VALUES (1, 1, 'random', 'evaluation', 2, 'open', CURRENT_TIMESTAMP), "
                          "(2, 1, 'margin', 'train', 1, 'open', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO round_items (round_id, rank, item_id, status) VALUES "
                          "(1, 0, 1, 'labeled'), (1, 1, 2, 'labeled'), (2, 0, 3, 'labeled')"))
        conn.execute(text("INSERT INTO annotations (project_id, item_id, annotation_id, class_id, annotator, created_at, "
                          "source) VALUES (1, 1, 1, 0, 'ann', CURRENT_TIMESTAMP, 'ui'), "
                          "(1, 2, 2, 1, 'ann', CURRENT_TIMESTAMP, 'ui'), (1, 3, 3, 1, 'ann', CURRENT_TIMESTAMP, 'ui')"))


def _columns(engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def _up_down(url: str) -> None:
    migrations.upgrade(url, "0007")
    engine = make_engine(url)
    try:
        _seed_0007(engine)
        assert "weight" not in _columns(engine, "evaluation_set")
        migrations.upgrade(url, "0008")
        assert {"inclusion_prob", "weight"} <= _columns(engine, "round_items")
        with engine.begin() as conn:
            # older rows carry NULL: weight 1 in the view
            assert dict(conn.execute(text("SELECT item_id, weight FROM evaluation_set")).all()) == {1: 1.0, 2: 1.0}
            conn.execute(text("UPDATE round_items SET inclusion_prob = 0.8, weight = 0.625 "
                              "WHERE round_id = 1 AND item_id = 2"))
            assert dict(conn.execute(text("SELECT item_id, weight FROM evaluation_set")).all()) == {1: 1.0, 2: 0.625}
            # a later evaluation round of the same item: its weight is the latest round's
            conn.execute(text("INSERT INTO rounds (round_id, project_id, strategy, purpose, budget, status, "
                              "created_at) VALUES (3, 1, 'active', 'evaluation', 1, 'open', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO round_items (round_id, rank, item_id, status, inclusion_prob, weight) "
                              "VALUES (3, 0, 2, 'labeled', 0.25, 2.0)"))
            assert dict(conn.execute(text("SELECT item_id, weight FROM evaluation_set")).all()) == {1: 1.0, 2: 2.0}
            # the train round's item stays in training_set only
            assert [r[0] for r in conn.execute(text("SELECT item_id FROM training_set"))] == [3]
        migrations.downgrade(url, "0007")
        assert not {"inclusion_prob", "weight"} & _columns(engine, "round_items")
        assert "weight" not in _columns(engine, "evaluation_set")
        with engine.connect() as conn:  # nothing else lost
            assert conn.execute(text("SELECT COUNT(*) FROM round_items")).scalar_one() == 4
            assert sorted(r[0] for r in conn.execute(text("SELECT item_id FROM evaluation_set"))) == [1, 2]
        migrations.upgrade(url)
        assert migrations.current(url) == migrations.heads()[0]
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_0008_up_down_with_data_sqlite(tmp_path):
    _up_down(f"sqlite:///{tmp_path / 'w.db'}")


@pytest.mark.postgres
def test_0008_up_down_with_data_postgres(empty_pg_url):
    _up_down(empty_pg_url)


def test_views_before_0008_never_name_the_weight():
    """Older revisions compile the views they created (no round_items.weight in them)."""
    from sqlalchemy.dialects import postgresql

    assert "weight" not in create_view_sql("evaluation_set", postgresql.dialect(), at="0007")
    assert "weight" in create_view_sql("evaluation_set", postgresql.dialect(), at="0008")
    assert "weight" in view_selects()["evaluation_set"].selected_columns


def test_0008_compiles_to_tsql():
    sql = migrations.offline_sql("mssql")
    assert "ALTER TABLE round_items ADD inclusion_prob FLOAT NULL" in sql
    assert "ALTER TABLE round_items ADD weight FLOAT NULL" in sql
