"""Security: login by password or token, signed HttpOnly SameSite cookie, CSRF on every
write, 401 / login redirect without a session, 403 for annotators on admin routes."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alsql.schema import annotations, projects, users as users_table
from tests.web_support import ADMIN_PW, ANNOTATOR_PW, seed, users

pytestmark = pytest.mark.sqlite


@pytest.fixture
def app(sqlite_url, tmp_path):
    from alsql.db import make_engine
    from alsql.web import create_app

    engine = make_engine(sqlite_url)
    info = seed(engine, tmp_path / "img", n=4)
    users(engine)
    engine.dispose()
    application = create_app(sqlite_url, "test-secret")
    application.state.info = info
    yield application
    application.state.engine.dispose()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client: TestClient, name: str, password: str) -> str:
    """Log in through the form; return the session's CSRF token (from the meta tag)."""
    page = client.get("/login")
    r = client.post("/login", data={"name": name, "password": password, "csrf_token": _csrf(page.text), "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    home = client.get("/")
    return re.search(r'<meta name="csrf" content="([^"]+)"', home.text).group(1)


def test_unauthenticated_gets_401_or_login_page(app):
    c = TestClient(app)
    pid = app.state.info["project_id"]
    assert c.get("/api/me").status_code == 401
    assert c.get(f"/api/projects/{pid}/map").status_code == 401
    assert c.get(f"/api/items/{app.state.info['items'][0]}/image").status_code == 401
    assert c.post(f"/api/projects/{pid}/queue", json={}).status_code == 401
    assert c.get("/api/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    for page in ("/", f"/projects/{pid}/label", f"/projects/{pid}/map", "/admin"):
        r = c.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_password_login_sets_a_safe_cookie(app):
    c = TestClient(app)
    page = c.get("/login")
    r = c.post("/login", data={"name": "ann", "password": ANNOTATOR_PW, "csrf_token": _csrf(page.text),
                               "next": "//evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert c.get("/api/me").json()["name"] == "ann"


def test_wrong_password_and_missing_csrf_are_refused(app):
    c = TestClient(app)
    page = c.get("/login")
    r = c.post("/login", data={"name": "ann", "password": "nope-nope", "csrf_token": _csrf(page.text)},
               follow_redirects=False)
    assert r.status_code == 303 and "error=1" in r.headers["location"]
    assert c.get("/api/me").status_code == 401
    r = c.post("/login", data={"name": "ann", "password": ANNOTATOR_PW, "csrf_token": "forged"},
               follow_redirects=False)
    assert r.status_code == 403


def test_token_login_form(app):
    c = TestClient(app)
    page = c.get("/login")
    c.post("/login", data={"token": "tok-admin-0123456789", "csrf_token": _csrf(page.text)})
    me = c.get("/api/me").json()
    assert (me["name"], me["role"]) == ("ada", "admin")


def test_api_writes_with_cookie_need_the_csrf_header(app):
    c = TestClient(app)
    csrf = login(c, "ann", ANNOTATOR_PW)
    pid, item = app.state.info["project_id"], app.state.info["items"][0]
    body = {"item_id": item, "class_id": 0, "next": 0}
    assert c.post(f"/api/projects/{pid}/labels", json=body).status_code == 403
    assert c.post(f"/api/projects/{pid}/labels", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert c.post(f"/api/projects/{pid}/labels", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    with app.state.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(annotations)).scalar() == 1


def test_tampered_cookie_is_no_session(app):
    c = TestClient(app)
    login(c, "ann", ANNOTATOR_PW)
    value = c.cookies.get("alsql_session")
    tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")

    def me(cookie: str) -> int:  # a fresh client carrying that cookie alone
        return TestClient(app).get("/api/me", headers={"Cookie": f"alsql_session={cookie}"}).status_code

    assert me(value) == 200 and me(tampered) == 401


def test_annotators_get_403_on_admin_routes(app):
    c = TestClient(app)
    csrf = login(c, "ann", ANNOTATOR_PW)
    h = {"X-CSRF-Token": csrf}
    pid = app.state.info["project_id"]
    assert c.get("/api/users").status_code == 403
    assert c.post("/api/users", json={"name": "x", "password": "password1"}, headers=h).status_code == 403
    assert c.post("/api/projects", json={"name": "p", "classes": ["a"]}, headers=h).status_code == 403
    assert c.post(f"/api/projects/{pid}/rounds", json={"budget": 1}, headers=h).status_code == 403
    assert c.post(f"/api/projects/{pid}/retrain", headers=h).status_code == 403
    assert c.get("/admin").status_code == 403
    r = c.post("/admin/projects", data={"csrf_token": csrf, "name": "p", "classes": "a,b"})
    assert r.status_code == 403
    with app.state.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(projects)).scalar() == 1


def test_admin_forms_need_csrf_and_work_with_it(app):
    c = TestClient(app)
    csrf = login(c, "ada", ADMIN_PW)
    assert c.post("/admin/projects", data={"csrf_token": "bad", "name": "p", "classes": "a,b"}).status_code == 403
    r = c.post("/admin/projects", data={"csrf_token": csrf, "name": "plants", "classes": "oak,ash"},
               follow_redirects=False)
    assert r.status_code == 303 and "created" in r.headers["location"]
    r = c.post("/admin/users", data={"csrf_token": csrf, "name": "cy", "role": "annotator", "token": "1"})
    token = re.search(r'id="new-token">([^<]+)<', r.text).group(1)
    assert c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "cy"
    with app.state.engine.connect() as conn:
        stored = dict(conn.execute(select(users_table.c.name, users_table.c.password_hash)).all())
        token_hashes = list(conn.execute(select(users_table.c.token_hash)).scalars())
    assert stored["ada"].startswith("$argon2id$") and ADMIN_PW not in stored["ada"]
    assert token not in token_hashes and stored["cy"] is None


def test_logout_ends_the_session(app):
    c = TestClient(app)
    csrf = login(c, "ann", ANNOTATOR_PW)
    assert c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert c.get("/api/me").status_code == 401


def test_cli_user_add_and_token(sqlite_url):
    from typer.testing import CliRunner

    from alsql.cli import app as cli
    from alsql.cli.common import set_database
    from alsql.db import make_engine

    runner = CliRunner()
    r = runner.invoke(cli, ["--db", sqlite_url, "user", "add", "eve", "--role", "admin", "--token"],
                      input="eve-password\neve-password\n")
    assert r.exit_code == 0, r.output
    token = re.search(r"token \(shown once\): (\S+)", r.output).group(1)
    r = runner.invoke(cli, ["--db", sqlite_url, "user", "add", "eve2", "--role", "boss", "--password", "x" * 8])
    assert r.exit_code != 0
    engine = make_engine(sqlite_url)
    from alsql.web.auth import authenticate_password, authenticate_token

    with engine.connect() as conn:
        assert authenticate_password(conn, "eve", "eve-password").role == "admin"
        assert authenticate_password(conn, "eve", "wrong-password") is None
        assert authenticate_token(conn, token).name == "eve"
        assert conn.execute(select(func.count()).select_from(users_table)).scalar() == 1
    r = runner.invoke(cli, ["--db", sqlite_url, "user", "list"])
    assert "eve" in r.output and "admin" in r.output
    engine.dispose()
    set_database("sqlite:///alsql.db")
