"""Overlap and gold in the labeling queue, on SQLite and PostgreSQL (docs/quality.md).

Overlap serves the configured share of round items to ``overlap_annotators`` distinct
annotators, never twice to one person (also with 20 concurrent clients); gold items are
mixed in at ``gold_rate``, never marked, never served twice to one annotator.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from alsql.db import write_transaction
from alsql.quality import is_overlapped
from alsql.schema import item_assignments, round_items
from alsql.web.auth import add_user
from alsql.web.queue import LabelQueue
from tests.quality_support import drain, labels_by_item, quality_project, servings
from tests.web_support import live_server


def _overlapped(items, share):
    return {i for i in items if is_overlapped(i, share)}


def test_overlap_serves_the_share_to_further_annotators_once_each(engine):
    info = quality_project(engine, 200, overlap=0.3, overlap_annotators=3)
    pid, items = info["project_id"], info["items"]
    q = LabelQueue(engine)
    first = drain(q, pid, "ann")
    assert sorted(first) == sorted(items)  # everything once to the first annotator, nothing twice
    second = drain(q, pid, "bob")
    want = _overlapped(items, 0.3)
    assert 0.2 * len(items) < len(want) < 0.4 * len(items)
    assert sorted(second) == sorted(want)  # the share, and only it, goes to a second annotator
    assert drain(q, pid, "ann") == []  # never the same item twice to one person
    third = drain(q, pid, "cyd")
    assert sorted(third) == sorted(want)
    assert drain(q, pid, "dan") == []  # three annotators in all: done
    by_item = labels_by_item(engine, pid)
    for item in items:
        who = by_item[item]
        assert len(who) == len(set(who))
        assert len(who) == (3 if item in want else 1)
    with engine.connect() as conn:
        left = conn.execute(select(round_items.c.copies_open).where(round_items.c.round_id == info["round_id"],
                                                                    round_items.c.copies_open > 0)).all()
    assert left == []


def test_overlap_copy_skipped_or_given_back_goes_to_someone_else(engine):
    info = quality_project(engine, 60, overlap=1.0, overlap_annotators=2)
    pid = info["project_id"]
    q = LabelQueue(engine)
    drain(q, pid, "ann", limit=2)  # two labeled: two copies open
    (c1,) = q.claim(pid, "bob", 1)
    assert c1.blind and c1.item_id in info["items"]
    q.skip(pid, "bob", c1.item_id)
    (c2,) = q.claim(pid, "bob", 1)
    assert c2.item_id != c1.item_id  # skipped: not offered to bob again
    assert q.release("bob", pid) == 1  # given back
    got = drain(q, pid, "cyd", limit=2)
    assert sorted(got) == sorted([c1.item_id, c2.item_id])  # both copies went to someone else
    assert [c.item_id for c in q.claim(pid, "bob", 5)] and all(
        c.item_id not in (c1.item_id, c2.item_id) for c in q.claim(pid, "bob", 5))


def test_overlap_copy_lease_expiry_returns_the_copy(engine):
    from datetime import timedelta

    info = quality_project(engine, 10, overlap=1.0, overlap_annotators=2)
    pid = info["project_id"]
    q = LabelQueue(engine)
    drain(q, pid, "ann", limit=1)
    q.lease = timedelta(seconds=-1)  # bob's copy lease is expired at once
    (c,) = q.claim(pid, "bob", 1)
    q.lease = timedelta(seconds=120)
    got = q.claim(pid, "cyd", 10)
    assert c.item_id in [g.item_id for g in got]
    assert c.item_id not in [g.item_id for g in q.claim(pid, "bob", 10) if g.blind]


def test_a_reload_offers_held_copies_again(engine):
    info = quality_project(engine, 10, overlap=1.0, overlap_annotators=2)
    pid = info["project_id"]
    q = LabelQueue(engine)
    drain(q, pid, "ann", limit=3)
    held = [c.item_id for c in q.claim(pid, "bob", 2)]
    again = [c.item_id for c in q.claim(pid, "bob", 2)]
    assert sorted(held) == sorted(again) and len(held) == 2


@pytest.mark.slow
def test_overlap_with_twenty_concurrent_clients(db_url, engine):
    """20 clients label until their queue is empty; then every item has had exactly its
    number of distinct annotators (after a sequential drain by late annotators), and no
    annotator labeled an item twice."""
    from alsql.web import create_app

    clients, k = 20, 3
    info = quality_project(engine, 300, overlap=0.5, overlap_annotators=k)
    pid, items = info["project_id"], info["items"]
    with write_transaction(engine) as conn:
        for c in range(clients):
            add_user(conn, f"u{c:02d}", "annotator", token=f"token-{c:02d}-abcdefghij")
    app = create_app(db_url, "secret")

    def client(c: int) -> list[int]:
        done = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer token-{c:02d}-abcdefghij"},
                          timeout=120) as h:
            r = h.post(f"/api/projects/{pid}/queue", json={"n": 2})
            r.raise_for_status()
            todo = r.json()["items"]
            while todo:
                item = todo[0]["item_id"]
                r = h.post(f"/api/projects/{pid}/labels",
                           json={"item_id": item, "class_id": c % 4, "next": 2, "exclude": [t["item_id"] for t in todo[1:]]})
                r.raise_for_status()
                done.append(item)
                held = [t for t in todo[1:]]
                todo = held + [t for t in r.json()["items"] if t["item_id"] not in {h["item_id"] for h in held}]
        return done

    with live_server(app) as base:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(client, range(clients)))
    app.state.engine.dispose()
    assert sum(1 for r in results if r) > 1
    for r in results:
        assert len(r) == len(set(r))  # no client labeled an item twice
    q = LabelQueue(engine)
    for late in ("late1", "late2", "late3"):
        drain(q, pid, late)
    want = _overlapped(items, 0.5)
    by_item = labels_by_item(engine, pid)
    for item in items:
        who = by_item[item]
        assert len(who) == len(set(who)), (item, who)
        assert len(who) == (k if item in want else 1), (item, who)
    assert Counter(a for _, a in servings(engine, pid, "overlap")).most_common(1)[0][1] >= 1


def test_gold_is_mixed_in_at_the_rate_and_never_marked(db_url, engine):
    from fastapi.testclient import TestClient

    from alsql.web import create_app

    rate = 0.15
    info = quality_project(engine, 260, n_gold=60, gold_rate=rate)
    pid, gold = info["project_id"], info["gold"]
    with engine.connect() as conn:
        in_round = set(conn.execute(select(round_items.c.item_id)
                                    .where(round_items.c.round_id == info["round_id"])).scalars())
    assert not (in_round & gold)  # gold items are not in the unlabeled pool, so never selected
    with write_transaction(engine) as conn:
        add_user(conn, "ann", "annotator", token="token-ann-abcdefghij")
    app = create_app(db_url, "secret")
    app.state.queue._rng.seed(3)
    h = {"Authorization": "Bearer token-ann-abcdefghij"}
    served, keys = [], set()
    with TestClient(app) as c:
        r = c.post(f"/api/projects/{pid}/queue", json={"n": 1}, headers=h)
        while r.json()["items"]:
            body = r.json()
            assert "gold" not in json.dumps(body).lower()  # no marker anywhere in the answer
            it = body["items"][0]
            keys.add(tuple(sorted(it)))
            assert it["round_id"] == info["round_id"]
            if it["item_id"] in gold:
                assert it["history"] == []
            served.append(it["item_id"])
            r = c.post(f"/api/projects/{pid}/labels", json={"item_id": it["item_id"], "class_id": 0, "next": 1},
                       headers=h)
            assert r.status_code == 200
        page = c.get(f"/projects/{pid}/label", headers=h)
        assert "gold" not in page.text.lower()
    app.state.engine.dispose()
    assert len(keys) == 1  # gold and other items carry the same fields
    assert len(served) == len(set(served))  # never the same item twice
    n_gold = sum(1 for i in served if i in gold)
    assert in_round <= set(served)
    # gold share among everything served: binomial, 4 standard deviations
    n = len(served)
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(n_gold - rate * n) <= 4 * sd + 1, (n_gold, n)
    assert sorted(i for i, _ in servings(engine, pid, "gold")) == sorted(i for i in served if i in gold)


def test_no_gold_when_nothing_else_is_served(engine):
    info = quality_project(engine, 30, n_gold=20, gold_rate=0.5)
    pid = info["project_id"]
    q = LabelQueue(engine, rng=random.Random(1))
    done = drain(q, pid, "ann")
    assert set(info["items"][20:]) <= set(done)
    assert q.claim(pid, "ann", 3) == []  # the round is done: gold alone is not served


def test_simulated_annotators_gold_accuracy_matches_their_error_rates(engine):
    """Three annotators with known error rates label through the queue; their accuracy on
    gold items, computed in SQL from the tables, is 1 - error rate within binomial tolerance."""
    info = quality_project(engine, 420, n_gold=180, gold_rate=0.35, overlap=0.2, overlap_annotators=2)
    pid, truth = info["project_id"], info["truth"]
    errors = {"careful": 0.05, "average": 0.2, "sloppy": 0.45}
    rng = random.Random(11)
    q = LabelQueue(engine, rng=random.Random(5))

    def answer(who):
        def pick(item):
            if rng.random() < errors[who]:
                return rng.choice([c for c in range(4) if c != truth[item]])
            return truth[item]
        return pick

    claims = {who: q.claim(pid, who, 1) for who in errors}
    while any(claims.values()):
        for who, cl in claims.items():
            if cl:
                _, claims[who] = q.label(pid, who, cl[0].item_id, answer(who)(cl[0].item_id), claim_next=1)
    from sqlalchemy import text

    sql = text("""
        SELECT a.annotator, COUNT(*) AS n, SUM(CASE WHEN a.class_id = g.class_id THEN 1 ELSE 0 END) AS ok
        FROM annotations a
        JOIN annotations g ON g.project_id = a.project_id AND g.item_id = a.item_id AND g.source = 'gold'
        WHERE a.project_id = :pid AND a.source = 'ui'
        GROUP BY a.annotator""")
    with engine.connect() as conn:
        acc = {r.annotator: (int(r.n), int(r.ok)) for r in conn.execute(sql, {"pid": pid})}
    assert set(acc) == set(errors)
    for who, e in errors.items():
        n, ok = acc[who]
        assert n >= 40, (who, n)
        p = 1 - e
        assert abs(ok / n - p) <= 3.5 * math.sqrt(p * (1 - p) / n) + 1 / n, (who, ok, n)


def test_sqlite_overlap_claims_use_the_open_copies_index_without_prior_statistics(tmp_path):
    """With no planner statistics SQLite reads the whole round by its key for each overlap
    claim; the queue gathers bounded statistics once, so the partial index is taken."""
    from sqlalchemy import event

    from alsql.db import make_engine
    from alsql.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'q.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        info = quality_project(engine, 300, overlap=0.5, overlap_annotators=2)
        pid = info["project_id"]
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is None or conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_stat1 WHERE tbl = 'round_items'").first() is None
        q = LabelQueue(engine)
        drain(q, pid, "ann", limit=40)
        seen = []
        event.listen(engine, "before_cursor_execute",
                     lambda conn, cur, st, params, ctx, many: seen.append((st, params)))
        assert q.claim(pid, "bob", 1)  # a copy of one of ann's overlapped items
        copies_sql = [(st, p) for st, p in seen if "copies_open > 0" in st and st.lstrip().startswith("SELECT")]
        assert copies_sql, "the overlap lookup ran"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1 FROM sqlite_stat1 WHERE tbl = 'round_items'").first()
            plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + copies_sql[0][0],
                                                                copies_sql[0][1]).all())
        assert "ix_round_items_copies_open" in plan, plan
    finally:
        engine.dispose()


def test_quality_claims_cost_no_more_statements_than_plain_ones(engine):
    """Label-and-next with overlap and gold on issues no more statements on average than
    with them off (same items, same users, alternating), on SQLite and PostgreSQL."""
    from sqlalchemy import event

    off = quality_project(engine, 120, n_gold=20, seed=1, name="plain")
    on = quality_project(engine, 120, n_gold=20, seed=2, name="quality-on", overlap=0.3, overlap_annotators=2,
                         gold_rate=0.1)
    q = LabelQueue(engine, rng=random.Random(7))
    count = [0]

    def seen(*_):
        count[0] += 1

    per_label = {}
    for arm, info in (("off", off), ("on", on)):
        pid, users = info["project_id"], ("ann", "bob", "cyd")
        todo = {u: q.claim(pid, u, 1) for u in users}
        calls, served = [], []
        event.listen(engine, "before_cursor_execute", seen)
        try:
            for k in range(60):
                u = users[k % len(users)]
                if not todo[u]:
                    continue
                item = todo[u][0].item_id
                count[0] = 0
                _, todo[u] = q.label(pid, u, item, 0, claim_next=1)
                calls.append(count[0])
                served.append((u, item))
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert len(served) == len(set(served)) and len(calls) >= 50
        per_label[arm] = sum(calls) / len(calls)
        if arm == "on":  # the quality path was exercised: copies and gold were served
            assert servings(engine, pid, "overlap") and servings(engine, pid, "gold")
    assert per_label["on"] <= per_label["off"], per_label


def test_quality_queue_statements_compile_for_each_dialect():
    """The queue's quality statements compile for SQLite, PostgreSQL (one statement that
    reads held servings and serves copies, SKIP LOCKED) and T-SQL (OUTPUT for RETURNING)."""
    from sqlalchemy.dialects import mssql, postgresql, sqlite

    from alsql.web.queue import postgres as pq
    from alsql.web.queue import statements as qm

    pg = str(pq._PG_HELD_AND_COPIES.compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE OF round_items SKIP LOCKED" in pg and "ON CONFLICT DO NOTHING" in pg
    assert "ON CONFLICT DO NOTHING" in str(pq._PG_GOLD_SERVE.compile(dialect=postgresql.dialect()))
    for stmt in (qm._HELD_AND_COPIES, qm._GOLD_SERVE, qm._MARK_OPENING, qm._COPIES, qm._EXPIRED_COPIES):
        str(stmt.compile(dialect=sqlite.dialect()))
        tsql = str(stmt.compile(dialect=mssql.dialect()))
        assert "LIMIT" not in tsql
    assert "OUTPUT inserted.item_id" in str(qm._GOLD_SERVE.compile(dialect=mssql.dialect()))


def test_copies_opened_by_another_server_process_are_served_after_the_book_reloads(engine):
    """Each process looks copies up only when its copy book says one may be the user's:
    copies another process opened are served here from the next load of the book (at most
    COPY_BOOK_TTL seconds later), never twice to one person."""
    from alsql.web import queue as qm

    info = quality_project(engine, 20, overlap=1.0, overlap_annotators=2)
    pid = info["project_id"]
    here, there = LabelQueue(engine), LabelQueue(engine)
    (first,) = here.claim(pid, "bob", 1)  # loads this process's book: no copies yet
    assert not first.blind
    done = drain(there, pid, "ann", limit=3)  # the other process opens three copies
    (fresh,) = here.claim(pid, "cyd", 1)
    assert not fresh.blind and fresh.item_id not in done  # not known here yet
    here._books[pid].loaded_at -= qm.COPY_BOOK_TTL  # the book is due for a reload
    got = here.claim(pid, "dan", 3)
    assert sorted(c.item_id for c in got) == sorted(done) and all(c.blind for c in got)
    assert [c.item_id for c in here.claim(pid, "ann", 5) if c.item_id in done] == []
