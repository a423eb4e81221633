"""Labels are refused for items that are not ``ok`` (nothing written), and class names that
differ only in case are refused wherever a project's classes are made (CLI, web API,
the catalog). On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alsql.catalog import create_project, parse_classes
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.labels import import_labels
from alsql.schema import annotations, classes, items, projects
from tests.conftest import add_items


def _count(engine, table=annotations):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize("dry_run", [True, False])
def test_labels_for_corrupt_or_missing_items_are_refused(engine, project, tmp_path, dry_run):
    ok = add_items(engine, 1)
    bad = add_items(engine, 1, start=10, status="corrupt")
    gone = add_items(engine, 1, start=20, status="missing")
    with engine.connect() as conn:
        bad_uri = conn.execute(select(items.c.uri).where(items.c.item_id == bad[0])).scalar_one()
    f = tmp_path / "labels.csv"
    f.write_text(f"item_id,label\n{ok[0]},zero\n{bad[0]},one\n{gone[0]},two\n")
    with pytest.raises(AlsqlError) as err:
        import_labels(engine, f, "digits", dry_run=dry_run)
    msg = str(err.value)
    assert "2 bad row(s), nothing was written" in msg
    assert (f"row 3: item {bad[0]} (item_id {bad[0]}) has status 'corrupt'; only items with status 'ok' can be "
            "labeled") in msg
    assert f"row 4: item {gone[0]} (item_id {gone[0]}) has status 'missing'" in msg
    by_uri = tmp_path / "by_uri.csv"
    by_uri.write_text(f"uri,label\n{bad_uri},one\n")
    with pytest.raises(AlsqlError, match=f"row 2: item {bad[0]} \\(uri '{bad_uri}'\\) has status 'corrupt'"):
        import_labels(engine, by_uri, "digits", dry_run=dry_run)
    assert _count(engine) == 0
    good = tmp_path / "good.csv"
    good.write_text(f"item_id,label\n{ok[0]},zero\n")
    assert import_labels(engine, good, "digits", dry_run=dry_run).rows == 1


def test_classes_differing_only_in_case_are_refused(engine):
    with pytest.raises(AlsqlError, match="--classes 'A,b,a': classes 'A' and 'a' differ only in case"):
        parse_classes("A,b,a")
    with pytest.raises(AlsqlError, match="project 'p': classes 'Cat' and 'CAT' differ only in case"):
        with write_transaction(engine) as conn:
            create_project(conn, "p", ["Cat", "dog", "CAT"])
    assert _count(engine, projects) == 0 and _count(engine, classes) == 0
    with write_transaction(engine) as conn:
        assert create_project(conn, "p", ["Cat", "dog"]).classes == ("Cat", "dog")


def test_cli_and_web_api_refuse_case_twins(db_url, engine, tmp_path, capsys):
    from alsql.cli import main
    from alsql.cli.common import set_database
    from alsql.web import create_app
    from tests.web_support import users

    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["--db", db_url, "project", "create", "birds", "--classes", "owl,Owl"])
    finally:
        set_database("sqlite:///alsql.db")
    out = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "classes 'owl' and 'Owl' differ only in case" in out.out + out.err
    tokens = users(engine)
    app = create_app(db_url, "test-secret")
    try:
        r = TestClient(app).post("/api/projects", json={"name": "birds", "classes": ["A", "a"]},
                                 headers={"Authorization": f"Bearer {tokens['admin']}"})
    finally:
        app.state.engine.dispose()
    assert r.status_code in (400, 422), r.text
    assert "'A' and 'a' differ only in case" in r.text
    assert _count(engine, projects) == 0
