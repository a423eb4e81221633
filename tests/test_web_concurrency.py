"""20 concurrent clients against the live server post 1,000 labels: exactly 1,000 rows,
each item once (the leases keep clients apart). A race after an expired lease keeps
both labels. On SQLite (BEGIN IMMEDIATE) and PostgreSQL (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from alsql.db import write_transaction
from alsql.schema import annotations, round_items
from alsql.web.auth import add_user
from tests.web_support import live_server, seed

pytestmark = pytest.mark.slow
CLIENTS = 20
LABELS = 1000


def test_twenty_clients_post_a_thousand_labels(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=LABELS)
    with write_transaction(engine) as conn:
        for k in range(CLIENTS):
            add_user(conn, f"u{k:02d}", "annotator", token=f"token-{k:02d}-abcdefghij")
    app = create_app(db_url, "secret")
    pid = info["project_id"]

    def client(k: int) -> list[int]:
        done = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer token-{k:02d}-abcdefghij"},
                          timeout=120) as c:
            r = c.post(f"/api/projects/{pid}/queue", json={"n": 1})
            r.raise_for_status()
            todo = r.json()["items"]
            while todo:
                item = todo[0]["item_id"]
                r = c.post(f"/api/projects/{pid}/labels", json={"item_id": item, "class_id": k % 3, "next": 1})
                r.raise_for_status()
                done.append(item)
                todo = r.json()["items"]
        return done

    with live_server(app) as base:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(client, range(CLIENTS)))
    labeled = [i for r in results for i in r]
    assert len(labeled) == LABELS and len(set(labeled)) == LABELS
    assert sum(1 for r in results if r) > 1  # the work was really shared
    with engine.connect() as conn:
        rows = conn.execute(select(func.count(), func.count(func.distinct(annotations.c.item_id)))
                            .select_from(annotations)).one()
        pending = conn.execute(select(func.count()).select_from(round_items)
                               .where(round_items.c.status != "labeled")).scalar()
        ids = list(conn.execute(select(annotations.c.annotation_id)).scalars())
    assert tuple(rows) == (LABELS, LABELS) and pending == 0
    assert len(set(ids)) == LABELS
    app.state.engine.dispose()


def test_race_after_expired_lease_keeps_both_labels(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=3)
    with write_transaction(engine) as conn:
        add_user(conn, "a", "annotator", token="token-a-abcdefghij")
        add_user(conn, "b", "annotator", token="token-b-abcdefghij")
    app = create_app(db_url, "secret")
    app.state.queue.lease = timedelta(seconds=-1)  # every lease is already expired
    pid = info["project_id"]
    from fastapi.testclient import TestClient

    c = TestClient(app)
    ha, hb = ({"Authorization": f"Bearer token-{u}-abcdefghij"} for u in "ab")
    first_a = c.post(f"/api/projects/{pid}/queue", json={"n": 1}, headers=ha).json()["items"][0]["item_id"]
    first_b = c.post(f"/api/projects/{pid}/queue", json={"n": 1}, headers=hb).json()["items"][0]["item_id"]
    assert first_a == first_b
    for h, cls in ((ha, 0), (hb, 1)):
        assert c.post(f"/api/projects/{pid}/labels", json={"item_id": first_a, "class_id": cls, "next": 0},
                      headers=h).status_code == 200
    with engine.connect() as conn:
        rows = conn.execute(select(annotations.c.annotator, annotations.c.class_id)
                            .where(annotations.c.item_id == first_a).order_by(annotations.c.annotation_id)).all()
    assert [tuple(r) for r in rows] == [("a", 0), ("b", 1)]
    app.state.engine.dispose()
