"""Revision 0006 (annotation quality) up and down with data in place, on SQLite and
PostgreSQL, and its T-SQL compiled offline."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from alsql import migrations
from alsql.db import make_engine


def _seed_0005(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (project_id, name, created_at) VALUES (1, 'p', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO classes (project_id, class_id, name, display_order) VALUES (1, 0, 'a', 0), "
                          "(1, 1, 'b', 1)"))
        conn.execute(text("INSERT INTO items (item_id, uri, status, ingested_at) VALUES "
                          "(1, 'file:///x/1.png', 'ok', CURRENT_TIMESTAMP), (2, 'file:///x/2.png', 'ok', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO annotations (project_id, item_id, annotation_id, class_id, annotator, created_at, "
                          "source) VALUES (1, 1, 1, 0, 'ann', CURRENT_TIMESTAMP, 'ui'), "
                          "(1, 1, 2, 1, 'bob', CURRENT_TIMESTAMP, 'ui'), (1, 2, 3, 1, 'ann', CURRENT_TIMESTAMP, 'import')"))
        conn.execute(text("INSERT INTO users (user_id, name, role, active, created_at, session_epoch) VALUES "
                          "(1, 'ada', 'admin', true, CURRENT_TIMESTAMP, 0)"))


def _up_down(url: str) -> None:
    migrations.upgrade(url, "0005")
    engine = make_engine(url)
    try:
        _seed_0005(engine)
        with engine.begin() as conn:
            with pytest.raises(IntegrityError):  # 0005 refuses gold
                with conn.begin_nested():
                    conn.execute(text("INSERT INTO annotations (project_id, item_id, annotation_id, class_id, "
                                      "created_at, source) VALUES (1, 2, 9, 0, CURRENT_TIMESTAMP, 'gold')"))
        migrations.upgrade(url, "0006")
        with engine.begin() as conn:
            # the rows are kept; the settings have their defaults; the majority rule with a tie
            assert conn.execute(text("SELECT COUNT(*) FROM annotations")).scalar_one() == 3
            assert tuple(conn.execute(text("SELECT overlap, overlap_annotators, gold_rate FROM projects")).one()) \
                == (0, 2, 0)
            assert dict(conn.execute(text("SELECT item_id, class_id FROM current_labels")).all()) == {1: 0, 2: 1}
            conn.execute(text("INSERT INTO annotations (project_id, item_id, annotation_id, class_id, annotator, "
                              "created_at, source) VALUES (1, 2, 4, 0, 'gold', CURRENT_TIMESTAMP, 'gold')"))
            conn.execute(text("INSERT INTO users (user_id, name, role, active, created_at, session_epoch) VALUES "
                              "(2, 'rita', 'reviewer', true, CURRENT_TIMESTAMP, 0)"))
            conn.execute(text("INSERT INTO item_assignments (project_id, item_id, annotator, kind, status, "
                              "assigned_at) VALUES (1, 2, 'bob', 'gold', 'pending', CURRENT_TIMESTAMP)"))
            assert dict(conn.execute(text("SELECT item_id, class_id FROM current_labels")).all()) == {1: 0, 2: 0}
        with engine.begin() as conn, pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO item_assignments (project_id, item_id, annotator, kind, status, "
                              "assigned_at) VALUES (1, 2, 'bob', 'overlap', 'pending', CURRENT_TIMESTAMP)"))
        migrations.downgrade(url, "0005")
        with engine.connect() as conn:  # nothing lost: gold became import, the reviewer an annotator
            assert conn.execute(text("SELECT source FROM annotations WHERE annotation_id = 4")).scalar_one() == "import"
            assert conn.execute(text("SELECT role FROM users WHERE name = 'rita'")).scalar_one() == "annotator"
            assert conn.execute(text("SELECT COUNT(*) FROM annotations")).scalar_one() == 4
            assert conn.execute(text("SELECT COUNT(*) FROM classes")).scalar_one() == 2
        migrations.upgrade(url)
        assert migrations.current(url) == migrations.heads()[0]
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_0006_up_down_with_data_sqlite(tmp_path):
    _up_down(f"sqlite:///{tmp_path / 'q.db'}")


@pytest.mark.postgres
def test_0006_up_down_with_data_postgres(empty_pg_url):
    _up_down(empty_pg_url)


def test_0006_compiles_to_tsql():
    sql = migrations.offline_sql("mssql")
    assert "CONSTRAINT pk_item_assignments PRIMARY KEY CLUSTERED (project_id, item_id, annotator)" in sql
    assert "ADD CONSTRAINT ck_annotations_source CHECK (source IN ('ui', 'import', 'review', 'oracle', 'gold'))" in sql
    assert "ADD CONSTRAINT ck_users_role CHECK (role IN ('annotator', 'reviewer', 'admin'))" in sql
    assert "CREATE INDEX ix_round_items_copies_open ON round_items (round_id, rank) WHERE copies_open > 0" in sql
    assert "CREATE INDEX ix_annotations_gold ON annotations (project_id, item_id) WHERE source = 'gold'" in sql
    assert "ALTER TABLE projects ADD overlap_annotators INTEGER NOT NULL DEFAULT '2'" in sql
    view = sql[sql.rindex("CREATE VIEW current_labels AS"):]
    assert "SELECT TOP 1" in view.split("GO")[0]  # the majority pick compiles to TOP, not LIMIT
