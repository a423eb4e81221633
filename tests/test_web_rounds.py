"""The web queue serves evaluation rounds interleaved with train rounds; progress and
admin show evaluation coverage; a model without an evaluation set shows "no evaluation
labels yet" (never 0.0%). Leases: short, renewed by the page's heartbeat, released on
logout and on page close, and they expire. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from alsql.db import write_transaction
from alsql.schema import model_versions, round_items, rounds
from alsql.schema.tables import utcnow
from alsql.web.queue import LEASE_SECONDS
from tests.web_support import ADMIN_PW, ANNOTATOR_PW, login, seed, users


@pytest.fixture
def setup(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=12, round_budget=4)
    tokens = users(engine)
    app = create_app(db_url, "test-secret")
    info.update(app=app, client=TestClient(app),
                admin={"Authorization": f"Bearer {tokens['admin']}"},
                ann={"Authorization": f"Bearer {tokens['annotator']}"})
    yield info
    app.state.engine.dispose()


def _purposes(engine, claims) -> list[str]:
    with engine.connect() as conn:
        purpose = dict(conn.execute(select(rounds.c.round_id, rounds.c.purpose)).all())
        where = dict(conn.execute(select(round_items.c.item_id, round_items.c.round_id)).all())
    return [purpose[where[c["item_id"]]] for c in claims]


def test_evaluation_rounds_are_served_interleaved_and_covered(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    r = c.post(f"/api/projects/{pid}/rounds", json={"strategy": "random", "budget": 4, "purpose": "evaluation"},
               headers=setup["admin"])
    assert r.status_code == 201, r.text
    ev = c.get(f"/api/projects/{pid}/progress", headers=setup["ann"]).json()["evaluation"]
    assert ev == {"rounds": 1, "size": 4, "labeled": 0, "coverage": 0.0}
    first = c.post(f"/api/projects/{pid}/queue", json={"n": 4}, headers=setup["ann"]).json()
    assert sorted(_purposes(engine, first["items"])) == ["evaluation", "evaluation", "train", "train"]
    assert first["left"] == 8  # both rounds
    todo, seen = first["items"], []
    while todo:
        item = todo[0]["item_id"]
        seen.append(todo[0])
        d = c.post(f"/api/projects/{pid}/labels", json={"item_id": item, "class_id": 1, "next": 1,
                                                          "exclude": [t["item_id"] for t in todo[1:]]},
                   headers=setup["ann"]).json()
        todo = todo[1:] + d["items"]
    kinds = _purposes(engine, seen)
    assert sorted(kinds) == ["evaluation"] * 4 + ["train"] * 4
    assert "evaluation" in kinds[:2] and "train" in kinds[:2]  # mixed from the start, not one after the other
    progress = c.get(f"/api/projects/{pid}/progress", headers=setup["ann"]).json()
    assert progress["evaluation"] == {"rounds": 1, "size": 4, "labeled": 4, "coverage": 1.0}
    admin = TestClient(setup["app"])
    login(admin, "ada", ADMIN_PW)
    page = admin.get("/admin").text
    assert "Evaluation coverage" in page and "100.0%" in page.split('id="coverage"')[1]


def test_models_without_evaluation_labels_say_so(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    with write_transaction(engine) as conn:
        conn.execute(insert(model_versions).values(
            project_id=pid, architecture="smallcnn", label_count=5, status="ready",
            metrics={"accuracy": None, "per_class_recall": {}, "evaluated": 0}))
    models = c.get(f"/api/projects/{pid}/progress", headers=setup["ann"]).json()["models"]
    assert [m["accuracy_text"] for m in models] == ["50.0%", "no evaluation labels yet"]
    assert models[1]["accuracy"] is None
    js = (setup["app"].state.templates.env.loader.searchpath[0] + "/../static/progress.js")
    assert "accuracy_text" in open(js).read()  # the page prints the server's text


def _held(engine, user: str) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(round_items.c.item_id).where(
            round_items.c.assigned_to == user, round_items.c.status == "pending")).scalars())


def test_logout_releases_leases_for_others(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    assert LEASE_SECONDS <= 120
    browser = TestClient(setup["app"])
    csrf = login(browser, "ann", ANNOTATOR_PW)
    mine = browser.post(f"/api/projects/{pid}/queue", json={"n": 4}, headers={"X-CSRF-Token": csrf}).json()["items"]
    assert len(mine) == 4 and _held(engine, "ann") == {i["item_id"] for i in mine}
    assert c.post(f"/api/projects/{pid}/queue", json={"n": 4}, headers=setup["admin"]).json()["items"] == []
    browser.post("/logout", data={"csrf_token": csrf})
    assert _held(engine, "ann") == set()
    theirs = c.post(f"/api/projects/{pid}/queue", json={"n": 4}, headers=setup["admin"]).json()["items"]
    assert {i["item_id"] for i in theirs} == {i["item_id"] for i in mine}


def test_page_close_releases_by_beacon(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    browser = TestClient(setup["app"])
    csrf = login(browser, "ann", ANNOTATOR_PW)
    mine = browser.post(f"/api/projects/{pid}/queue", json={"n": 3}, headers={"X-CSRF-Token": csrf}).json()["items"]
    ids = [i["item_id"] for i in mine]
    form = {"items": ",".join(map(str, ids[:2]))}
    assert browser.post(f"/api/projects/{pid}/leases/release", data=form).status_code == 403  # no CSRF token
    r = browser.post(f"/api/projects/{pid}/leases/release", data={**form, "csrf_token": csrf})
    assert r.status_code == 200 and r.json() == {"released": 2}
    assert _held(engine, "ann") == {ids[2]}
    got = c.post(f"/api/projects/{pid}/queue", json={"n": 3}, headers=setup["admin"]).json()["items"]
    got = {i["item_id"] for i in got}
    assert set(ids[:2]) <= got and ids[2] not in got
    r = browser.post(f"/api/projects/{pid}/leases/release", data={"items": "1,x", "csrf_token": csrf})
    assert r.status_code == 422


def test_renew_extends_and_expiry_frees(setup, engine):
    c, pid, app = setup["client"], setup["project_id"], setup["app"]
    app.state.queue.lease = timedelta(seconds=-1)  # every new lease is already expired
    mine = [i["item_id"] for i in c.post(f"/api/projects/{pid}/queue", json={"n": 2}, headers=setup["ann"]).json()["items"]]
    app.state.queue.lease = timedelta(seconds=LEASE_SECONDS)
    r = c.post(f"/api/projects/{pid}/leases/renew", json={"items": mine}, headers=setup["ann"])
    assert r.status_code == 200 and r.json() == {"renewed": 2, "lease_seconds": LEASE_SECONDS}
    others = [i["item_id"] for i in c.post(f"/api/projects/{pid}/queue", json={"n": 4}, headers=setup["admin"]).json()["items"]]
    assert not set(mine) & set(others) and len(others) == 2  # renewed leases hold
    # Expiry: the admin's leases lapse (no heartbeat), and the annotator is offered them.
    with write_transaction(engine) as conn:  # the admin's page closed without a word an hour ago
        conn.execute(round_items.update().where(round_items.c.assigned_to == "ada")
                     .values(lease_expires_at=utcnow() - timedelta(hours=1)))
    again = [i["item_id"] for i in c.post(f"/api/projects/{pid}/queue", json={"n": 4}, headers=setup["ann"]).json()["items"]]
    assert set(again) == set(mine) | set(others)
    # Renewal does not take back a lease that went to someone else.
    assert c.post(f"/api/projects/{pid}/leases/renew", json={"items": others}, headers=setup["admin"]).json()["renewed"] == 0
