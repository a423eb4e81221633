"""Revision 0009 (project scope) up and down with data in place, on SQLite and PostgreSQL:
the views keep the scoped project's items after the upgrade; the downgrade drops the
scopes (every project sees every item again) and touches no label."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from alsql import migrations
from alsql.db import make_engine


def _seed_0008(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (project_id, name, created_at) VALUES (1, 'p', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO classes (project_id, class_id, name, display_order) VALUES (1, 0, 'a', 0)"))
        conn.execute(text("INSERT INTO items (item_id, uri, media_type, status, ingested_at) VALUES "
                          "(1, 'file:///x/1.png', 'image/png', 'ok', CURRENT_TIMESTAMP), "
                          "(2, 'file:///x/2.png', 'image/png', 'ok', CURRENT_TIMESTAMP), "
                          "(3, 'file:///x/s.wav#t=0,1', 'audio/wav', 'ok', CURRENT_TIMESTAMP), "
                          "(4, 'file:///x/s.wav#t=1,2', 'audio/wav', 'ok', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO annotations (project_id, item_id, annotation_id, class_id, annotator, created_at, "
                          "source) VALUES (1, 1, 1, 0, 'ann', CURRENT_TIMESTAMP, 'ui'), "
                          "(1, 3, 2, 0, 'ann', CURRENT_TIMESTAMP, 'ui')"))


def _ids(conn, view: str) -> list[int]:
    return sorted(r[0] for r in conn.execute(text(f"SELECT item_id FROM {view} WHERE project_id = 1")))


def _up_down(url: str) -> None:
    migrations.upgrade(url, "0008")
    engine = make_engine(url)
    try:
        _seed_0008(engine)
        migrations.upgrade(url, "0009")
        assert "project_scopes" in inspect(engine).get_table_names()
        with engine.begin() as conn:
            assert (_ids(conn, "unlabeled_pool"), _ids(conn, "training_set")) == ([2, 4], [1, 3])  # no scope yet
            conn.execute(text("INSERT INTO project_scopes (project_id, scope_id, kind, value, pattern) "
                              "VALUES (1, 0, 'media', 'audio', 'audio/%')"))
            assert (_ids(conn, "unlabeled_pool"), _ids(conn, "training_set")) == ([4], [3])
        migrations.downgrade(url, "0008")
        assert "project_scopes" not in inspect(engine).get_table_names()
        with engine.connect() as conn:  # every item again, every label kept
            assert (_ids(conn, "unlabeled_pool"), _ids(conn, "training_set")) == ([2, 4], [1, 3])
            assert conn.execute(text("SELECT COUNT(*) FROM annotations")).scalar_one() == 2
        migrations.upgrade(url)
        assert migrations.current(url) == migrations.heads()[0]
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_0009_up_down_with_data_sqlite(tmp_path):
    _up_down(f"sqlite:///{tmp_path / 's.db'}")


@pytest.mark.postgres
def test_0009_up_down_with_data_postgres(empty_pg_url):
    _up_down(empty_pg_url)
