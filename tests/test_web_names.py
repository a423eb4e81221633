"""Bad names and numbers are 4xx with a message on both backends, never a 500: NaN and
Infinity in a label; NUL bytes and over-long project, class and user names (one rule,
``alsql.names``, in the API, the admin forms and the CLI); all-digit project names are
refused, so a project reference is never ambiguous."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from alsql.catalog import create_project, get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.names import MAX_NAME, check_name, check_project_name
from alsql.schema import annotations, classes, projects, users as users_table
from tests.web_support import ADMIN_PW, login, seed, users

BAD_NAMES = ["a\x00b", "x" * (MAX_NAME + 1), "x" * 10_000, "tab\there", "  ", "\ud800"]


def _post(c, url: str, body: dict, headers: dict):
    """JSON with \\u escapes (a lone surrogate is valid JSON text, not valid UTF-8)."""
    return c.post(url, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"})


@pytest.fixture
def setup(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=4)
    tokens = users(engine)
    app = create_app(db_url, "test-secret")
    info.update(app=app, client=TestClient(app, raise_server_exceptions=False),
                admin={"Authorization": f"Bearer {tokens['admin']}"},
                ann={"Authorization": f"Bearer {tokens['annotator']}"})
    yield info
    app.state.engine.dispose()


def _counts(engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (projects, classes, users_table, annotations))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_seconds_is_422_with_a_message(setup, engine, value):
    c, pid, item = setup["client"], setup["project_id"], setup["items"][0]
    body = '{"item_id": %d, "class_id": 0, "seconds": %s, "next": 0}' % (item, value)
    r = c.post(f"/api/projects/{pid}/labels", content=body,
               headers={**setup["ann"], "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "seconds"] and "finite" in detail["msg"]
    assert _counts(engine)[3] == 0


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_are_4xx_in_the_api(setup, engine, bad):
    c = setup["client"]
    before = _counts(engine)
    for body in ({"name": bad, "classes": ["a"]}, {"name": "fine", "classes": ["a", bad]}):
        r = _post(c, "/api/projects", body, setup["admin"])
        assert r.status_code == 422, r.text
        assert "name" in r.json()["detail"][0]["msg"]
    r = _post(c, "/api/users", {"name": bad, "password": "password-1"}, setup["admin"])
    assert r.status_code == 422 and "user name" in r.json()["detail"][0]["msg"]
    # Logging in with such a name is a plain failed login (a form cannot carry a lone surrogate).
    if bad == "\ud800":
        bad = "\x7f"
    page = c.get("/login")
    import re

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"name": bad, "password": "whatever-1", "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and "error=1" in r.headers["location"]
    assert _counts(engine) == before


def test_names_at_the_limit_are_kept_whole(setup, engine):
    c = setup["client"]
    long = "é" * MAX_NAME
    r = c.post("/api/projects", json={"name": "  " + long + "  ", "classes": [long]}, headers=setup["admin"])
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        p = get_project(conn, r.json()["project_id"])
    assert p.name == long and p.classes == (long,)


def test_bad_names_in_the_admin_forms(setup, engine):
    c = TestClient(setup["app"])
    csrf = login(c, "ada", ADMIN_PW)
    before = _counts(engine)
    for data in ({"name": "p\x00", "classes": "a,b"}, {"name": "p" * 300, "classes": "a,b"},
                 {"name": "ok", "classes": "a,b\x00"}, {"name": "42", "classes": "a,b"}):
        r = c.post("/admin/projects", data={"csrf_token": csrf, **data}, follow_redirects=False)
        assert r.status_code == 303 and "error" in r.headers["location"], r.headers["location"]
    r = c.post("/admin/users", data={"csrf_token": csrf, "name": "u" * 201, "role": "annotator",
                                     "password": "password-1"}, follow_redirects=False)
    assert r.status_code == 303 and "at+most+200" in r.headers["location"].replace("%20", "+")
    assert _counts(engine) == before


def test_bad_names_in_the_cli(db_url, engine):
    from alsql.cli import app as cli
    from alsql.cli.common import set_database

    runner = CliRunner()
    before = _counts(engine)
    try:
        for args in (["project", "create", "x" * 201, "--classes", "a,b"],
                     ["project", "create", "p", "--classes", "a," + "b" * 300],
                     ["project", "create", "12", "--classes", "a,b"],
                     ["user", "add", "u" * 201, "--password", "password-1"]):
            r = runner.invoke(cli, ["--db", db_url, *args])
            # The entry point prints an AlsqlError as one line (exit 2); here it surfaces as is.
            assert isinstance(r.exception, AlsqlError) and "expected" in str(r.exception), (args, r.output)
    finally:
        set_database("sqlite:///alsql.db")
    assert _counts(engine) == before


def test_the_rule():
    assert check_name("  birds ", "project name") == "birds"
    for bad in BAD_NAMES:
        with pytest.raises(AlsqlError, match="name"):
            check_name(bad, "project name")
    for digits in ("1", "007", " 12 ", "²"):
        with pytest.raises(AlsqlError, match="all digits"):
            check_project_name(digits)
    assert check_project_name("set-1") == "set-1"


def test_all_digit_project_names_are_refused_and_references_unambiguous(setup, engine):
    c = setup["client"]
    r = c.post("/api/projects", json={"name": "1", "classes": ["a"]}, headers=setup["admin"])
    assert r.status_code == 422 and "all digits" in r.json()["detail"][0]["msg"]
    with write_transaction(engine) as conn:
        with pytest.raises(AlsqlError, match="all digits"):
            create_project(conn, "2", ["a"])
        birds = create_project(conn, "birds", ["a"])
    with engine.connect() as conn:
        assert get_project(conn, str(birds.project_id)).name == "birds"
        assert get_project(conn, "birds").project_id == birds.project_id
        with pytest.raises(AlsqlError, match="does not exist"):
            get_project(conn, "²")
    # A digit name left from before the rule: the reference that could mean two projects is refused.
    with write_transaction(engine) as conn:
        conn.execute(projects.insert().values(name=str(birds.project_id)))
    with engine.connect() as conn:
        with pytest.raises(AlsqlError, match="ambiguous"):
            get_project(conn, str(birds.project_id))
