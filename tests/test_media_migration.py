"""Migration 0003 (sources, segment columns) down and up again with data in place."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, inspect, select, text

from alsql import migrations
from alsql.catalog import create_project
from alsql.db import make_engine, write_transaction
from alsql.schema import annotations, items, sources


def _roundtrip_with_data(url: str) -> None:
    migrations.upgrade(url)
    engine = make_engine(url)
    try:
        with write_transaction(engine) as conn:
            pid = create_project(conn, "p", ["a", "b"]).project_id
            sid = conn.execute(insert(sources).values(uri="file:///v.mp4", status="ok")
                               .returning(sources.c.source_id)).scalar_one()
            image = conn.execute(insert(items).values(uri="file:///x.png", status="ok")
                                 .returning(items.c.item_id)).scalar_one()
            seg = conn.execute(insert(items).values(uri="file:///v.mp4#t=0,2", status="ok", source_id=sid,
                                                    start_s=0.0, end_s=2.0, rate=25.0)
                               .returning(items.c.item_id)).scalar_one()
            for k, item in enumerate((image, seg), 1):
                conn.execute(insert(annotations).values(project_id=pid, item_id=item, annotation_id=k, class_id=0,
                                                        source="import"))
    finally:
        engine.dispose()
    migrations.downgrade(url, "0002")
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        assert "sources" not in insp.get_table_names()
        assert not {"source_id", "start_s", "end_s", "rate"} & {c["name"] for c in insp.get_columns("items")}
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT item_id, uri FROM items ORDER BY item_id")).all()
            assert [tuple(r) for r in kept] == [(image, "file:///x.png"), (seg, "file:///v.mp4#t=0,2")]
            assert conn.execute(text("SELECT COUNT(*) FROM annotations")).scalar_one() == 2
            assert conn.execute(text("SELECT COUNT(*) FROM training_set")).scalar_one() == 2
            if engine.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    finally:
        engine.dispose()
    migrations.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(items.c.source_id).where(items.c.item_id == seg)).scalar() is None
    finally:
        engine.dispose()


@pytest.mark.sqlite
def test_downgrade_keeps_items_and_labels_sqlite(tmp_path):
    _roundtrip_with_data(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_downgrade_keeps_items_and_labels_postgres(empty_pg_url):
    _roundtrip_with_data(empty_pg_url)
