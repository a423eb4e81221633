"""The JSON API: queue with leases, labels through insert_annotations, skip, images,
progress, the map, admin actions. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alsql.schema import annotations, round_items, rounds, runs
from tests.web_support import seed, users


@pytest.fixture
def setup(db_url, engine, tmp_path):
    info = seed(engine, tmp_path / "img", n=12)
    tokens = users(engine)
    from alsql.web import create_app

    app = create_app(db_url, "test-secret")
    client = TestClient(app)
    info.update(app=app, client=client,
                admin={"Authorization": f"Bearer {tokens['admin']}"},
                ann={"Authorization": f"Bearer {tokens['annotator']}"})
    yield info
    app.state.engine.dispose()


def test_queue_leases_keep_annotators_apart(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    a = c.post(f"/api/projects/{pid}/queue", json={"n": 3}, headers=setup["ann"]).json()
    b = c.post(f"/api/projects/{pid}/queue", json={"n": 3}, headers=setup["admin"]).json()
    ids_a = [i["item_id"] for i in a["items"]]
    ids_b = [i["item_id"] for i in b["items"]]
    assert len(ids_a) == 3 and len(ids_b) == 3
    assert not set(ids_a) & set(ids_b)
    assert a["round_id"] == setup["round_id"] and a["left"] == 12
    # A reload offers the same leased items again, in rank order.
    again = c.post(f"/api/projects/{pid}/queue", json={"n": 3}, headers=setup["ann"]).json()
    assert [i["item_id"] for i in again["items"]] == ids_a
    guess = a["items"][0]["guess"]
    assert guess["model_id"] == setup["model_id"] and 0 <= guess["confidence"] <= 1
    with engine.connect() as conn:
        leased = conn.execute(select(round_items.c.item_id, round_items.c.assigned_to)
                              .where(round_items.c.assigned_to.is_not(None))).all()
    assert {i for i, who in leased if who == "ann"} == set(ids_a)


def test_label_appends_and_claims_next(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    first = c.post(f"/api/projects/{pid}/queue", json={"n": 1}, headers=setup["ann"]).json()["items"][0]
    d = c.post(f"/api/projects/{pid}/labels", headers=setup["ann"],
               json={"item_id": first["item_id"], "class_id": 2, "seconds": 1.5, "next": 2})
    assert d.status_code == 200, d.text
    body = d.json()
    assert len(body["items"]) == 2 and first["item_id"] not in [i["item_id"] for i in body["items"]]
    assert body["left"] == 11
    # A correction is a new row; both stay.
    c.post(f"/api/projects/{pid}/labels", headers=setup["ann"],
           json={"item_id": first["item_id"], "class_id": 0, "next": 0})
    with engine.connect() as conn:
        rows = conn.execute(select(annotations).where(annotations.c.item_id == first["item_id"])
                            .order_by(annotations.c.annotation_id)).all()
        status = conn.execute(select(round_items.c.status).where(round_items.c.item_id == first["item_id"])).scalar()
    assert [(r.class_id, r.annotator, r.source) for r in rows] == [(2, "ann", "ui"), (0, "ann", "ui")]
    assert rows[0].seconds == 1.5 and status == "labeled"
    item = c.get(f"/api/projects/{pid}/items/{first['item_id']}", headers=setup["ann"]).json()
    assert [h["class_name"] for h in item["history"]] == ["bird", "cat"]
    hist = c.get(f"/api/projects/{pid}/history", headers=setup["ann"]).json()
    assert [h["class_id"] for h in hist[:2]] == [0, 2]


def test_bad_label_is_refused_and_writes_nothing(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    item = setup["items"][0]
    r = c.post(f"/api/projects/{pid}/labels", headers=setup["ann"], json={"item_id": item, "class_id": 9})
    assert r.status_code == 400 and "class_id 9" in r.json()["detail"] and "cat" in r.json()["detail"]
    r = c.post(f"/api/projects/{pid}/labels", headers=setup["ann"], json={"item_id": 10**9, "class_id": 0})
    assert r.status_code == 400 and "no such item" in r.json()["detail"]
    r = c.post(f"/api/projects/{pid}/labels", headers=setup["ann"], json={"item_id": item, "class_id": -1})
    assert r.status_code == 422
    assert c.post("/api/projects/999/labels", headers=setup["ann"], json={"item_id": item, "class_id": 0}).status_code == 404
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(annotations)).scalar() == 0


def test_skip_and_round_closes_when_done(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    got = c.post(f"/api/projects/{pid}/queue", json={"n": 1}, headers=setup["ann"]).json()["items"]
    seen = 0
    while got:
        cur = got[0]["item_id"]
        if seen % 2:
            got = c.post(f"/api/projects/{pid}/skip", headers=setup["ann"], json={"item_id": cur, "next": 1}).json()["items"]
        else:
            got = c.post(f"/api/projects/{pid}/labels", headers=setup["ann"],
                         json={"item_id": cur, "class_id": 1, "next": 1}).json()["items"]
        seen += 1
    assert seen == 12
    with engine.connect() as conn:
        counts = dict(conn.execute(select(round_items.c.status, func.count()).group_by(round_items.c.status)).all())
        n_ann = conn.execute(select(func.count()).select_from(annotations)).scalar()
        status = conn.execute(select(rounds.c.status).where(rounds.c.round_id == setup["round_id"])).scalar()
    assert counts == {"labeled": 6, "skipped": 6} and n_ann == 6 and status == "closed"


def test_image_served_by_id_only(setup):
    c = setup["client"]
    r = c.get(f"/api/items/{setup['items'][0]}/image", headers=setup["ann"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert c.get("/api/items/999999/image", headers=setup["ann"]).status_code == 404
    assert c.get("/api/items/..%2F..%2Fetc%2Fpasswd/image", headers=setup["ann"]).status_code in (404, 422)


def test_progress_and_map(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    item = setup["items"][3]
    c.post(f"/api/projects/{pid}/labels", headers=setup["ann"], json={"item_id": item, "class_id": 1, "next": 0})
    with engine.begin() as conn:
        conn.execute(runs.insert().values(project_id=pid, step="train", status="failed", error="out of memory"))
    p = c.get(f"/api/projects/{pid}/progress", headers=setup["ann"]).json()
    assert [x["labels"] for x in p["classes"]] == [0, 1, 0] and p["labels_total"] == 1
    assert p["models"][0]["accuracy"] == 0.5 and p["rounds"][0]["pending"] == 11
    assert p["failed_runs"][0]["error"] == "out of memory" and len(p["labels_per_day"]) == 1
    m = c.get(f"/api/projects/{pid}/map", headers=setup["ann"]).json()
    assert m["item_id"] == setup["items"] and len(m["x"]) == len(m["confidence"]) == 12
    assert m["label"][3] == 1 and m["label"].count(-1) == 11 and m["model_id"] == setup["model_id"]
    page = c.get(f"/api/projects/{pid}/map?limit=5&after={setup['items'][4]}", headers=setup["ann"]).json()
    assert page["item_id"] == setup["items"][5:10] and page["next_after"] == setup["items"][9]


def test_admin_actions(setup, engine):
    c, pid = setup["client"], setup["project_id"]
    r = c.post("/api/projects", headers=setup["admin"], json={"name": "birds", "classes": ["tit", "wren"]})
    assert r.status_code == 201
    new_pid = r.json()["project_id"]
    assert [k["key"] for k in c.get(f"/api/projects/{new_pid}", headers=setup["admin"]).json()["classes"]] == ["1", "2"]
    assert c.post("/api/projects", headers=setup["admin"], json={"name": "birds", "classes": ["x"]}).status_code == 400
    assert c.post("/api/projects", headers=setup["admin"], json={"name": "b2", "classes": ["x", "x"]}).status_code == 400
    r = c.post(f"/api/projects/{new_pid}/rounds", headers=setup["admin"], json={"strategy": "random", "budget": 5})
    assert r.status_code == 201
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(round_items)
                            .where(round_items.c.round_id == r.json()["round_id"])).scalar() == 5
    r = c.post(f"/api/projects/{pid}/rounds", headers=setup["admin"], json={"strategy": "nonsense", "budget": 5})
    assert r.status_code == 400 and "nonsense" in r.json()["detail"]
    run = c.post(f"/api/projects/{pid}/retrain", headers=setup["admin"]).json()
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.run_id == run["run_id"])).one()
    assert (row.step, row.status, row.trigger, row.project_id) == ("train", "queued", "web:ada", pid)
    made = c.post("/api/users", headers=setup["admin"], json={"name": "cy", "password": "cy-password", "token": True}).json()
    assert made["token"].startswith("alsql_")
    me = c.get("/api/me", headers={"Authorization": f"Bearer {made['token']}"}).json()
    assert me["name"] == "cy" and me["role"] == "annotator"
    assert [u["name"] for u in c.get("/api/users", headers=setup["admin"]).json()] == ["ada", "ann", "cy"]
