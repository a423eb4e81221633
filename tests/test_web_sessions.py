"""Server-side revocation: logout ends the session (a copy of the cookie no longer
works); `alsql user deactivate` stops the user's session and token at once, and
`alsql user password` ends its sessions. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.web_support import ANNOTATOR_PW, login, seed, users

TOKEN = "tok-annot-0123456789"


@pytest.fixture
def app(db_url, engine, tmp_path):
    from alsql.web import create_app

    seed(engine, tmp_path / "img", n=4)
    users(engine)
    application = create_app(db_url, "test-secret")
    application.state.db_url = db_url
    yield application
    application.state.engine.dispose()


def _cli(db_url: str, *args: str, input: str | None = None):
    from alsql.cli import app as cli
    from alsql.cli.common import set_database

    try:
        r = CliRunner().invoke(cli, ["--db", db_url, *args], input=input)
    finally:
        set_database("sqlite:///alsql.db")
    assert r.exit_code == 0, (r.output, r.exception)
    return r


def test_logout_revokes_the_session_server_side(app):
    c = TestClient(app)
    login(c, "ann", ANNOTATOR_PW)
    stolen = c.cookies.get("alsql_session")
    other = TestClient(app)  # another device of the same user
    login(other, "ann", ANNOTATOR_PW)
    r = c.get("/")
    csrf = r.text.split('<meta name="csrf" content="')[1].split('"')[0]
    assert c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    replay = TestClient(app)
    replay.cookies.set("alsql_session", stolen)
    assert replay.get("/api/me").status_code == 401  # the signed cookie alone is not enough
    assert other.get("/api/me").status_code == 401  # logout ends every session of the user
    login(c, "ann", ANNOTATOR_PW)  # a new login works
    assert c.get("/api/me").json()["name"] == "ann"


def test_deactivate_stops_session_and_token_at_once(app):
    c = TestClient(app)
    login(c, "ann", ANNOTATOR_PW)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/api/me").status_code == 200 and c.get("/api/me", headers=bearer).status_code == 200
    r = _cli(app.state.db_url, "user", "deactivate", "ann")
    assert "deactivated" in r.output
    assert c.get("/api/me").status_code == 401
    assert c.get("/api/me", headers=bearer).status_code == 401
    fresh = TestClient(app)
    page = fresh.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = fresh.post("/login", data={"name": "ann", "password": ANNOTATOR_PW, "csrf_token": csrf},
                   follow_redirects=False)
    assert "error=1" in r.headers["location"]
    listing = _cli(app.state.db_url, "user", "list").output
    assert "ann" in listing and "no" in listing
    _cli(app.state.db_url, "user", "activate", "ann")
    assert c.get("/api/me", headers=bearer).status_code == 200  # the token works again
    assert c.get("/api/me").status_code == 401  # the old session stays ended


def test_password_change_ends_sessions(app):
    c = TestClient(app)
    login(c, "ann", ANNOTATOR_PW)
    _cli(app.state.db_url, "user", "password", "ann", input="new-password-9\nnew-password-9\n")
    assert c.get("/api/me").status_code == 401
    fresh = TestClient(app)
    login(fresh, "ann", "new-password-9")
    assert fresh.get("/api/me").json()["name"] == "ann"


def test_cli_refuses_unknown_users_and_short_passwords(app):
    from alsql.cli import app as cli
    from alsql.cli.common import set_database
    from alsql.errors import AlsqlError

    try:
        for args in (["user", "deactivate", "nobody"], ["user", "password", "ann", "--password", "short"]):
            r = CliRunner().invoke(cli, ["--db", app.state.db_url, *args])
            assert isinstance(r.exception, AlsqlError), r.output
    finally:
        set_database("sqlite:///alsql.db")
    c = TestClient(app)
    login(c, "ann", ANNOTATOR_PW)  # nothing changed
