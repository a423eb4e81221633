"""The review queue's API on SQLite and PostgreSQL: disagreements between annotators and
confident model disagreements are listed (above the threshold only), a decision is a
``review`` annotation that becomes the label of record (and the training set's label),
paging is a keyset that reaches every item, and annotators are refused."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.schema import annotations
from alsql.schema.views import current_labels, training_set
from tests.web_support import seed, users


@pytest.fixture
def setup(db_url, engine, tmp_path):
    # seed(): item k is guessed class k % 3 with confidence 0.4 + 0.5 * (k % 7) / 6.
    info = seed(engine, tmp_path / "img", n=21)
    tokens = users(engine)
    from alsql.web import create_app

    app = create_app(db_url, "test-secret")
    info.update(app=app, client=TestClient(app),
                admin={"Authorization": f"Bearer {tokens['admin']}"},
                ann={"Authorization": f"Bearer {tokens['annotator']}"})
    yield info
    app.state.engine.dispose()


def label(engine, pid, item, cls, who, source="ui"):
    with write_transaction(engine) as conn:
        return insert_annotations(conn, [{"project_id": pid, "item_id": item, "class_id": cls, "annotator": who,
                                          "source": source}])[0]


def listed(setup, **params) -> dict[int, list[str]]:
    r = setup["client"].get(f"/api/projects/{setup['project_id']}/review", params={"limit": 100, **params},
                            headers=setup["admin"])
    assert r.status_code == 200, r.text
    assert r.json()["next_after"] is None
    return {it["item_id"]: it["reasons"] for it in r.json()["items"]}


def record(engine, pid, item):
    with engine.connect() as conn:
        return conn.execute(select(current_labels.c.class_id, current_labels.c.source)
                            .where(current_labels.c.project_id == pid, current_labels.c.item_id == item)).one()


def test_disagreements_are_listed_with_every_annotators_label(setup, engine):
    pid, it = setup["project_id"], setup["items"]
    # Item 0 (guess cat at 40%): ann says cat, bob says dog -> listed.
    label(engine, pid, it[0], 0, "ann"); label(engine, pid, it[0], 1, "bob")
    # Item 1: both say dog -> not listed.
    label(engine, pid, it[1], 1, "ann"); label(engine, pid, it[1], 1, "bob")
    # Item 2: ann corrected herself to agree with bob: only latest labels count -> not listed.
    label(engine, pid, it[2], 0, "ann"); label(engine, pid, it[2], 1, "bob"); label(engine, pid, it[2], 1, "ann")
    # Item 3: disagree, then ann agrees after bob: still three annotators, two differ -> listed.
    label(engine, pid, it[3], 0, "ann"); label(engine, pid, it[3], 2, "bob"); label(engine, pid, it[3], 2, "cy")
    # Item 7: they disagree but a reviewer already decided -> settled, not listed.
    label(engine, pid, it[7], 0, "ann"); label(engine, pid, it[7], 1, "bob"); label(engine, pid, it[7], 1, "ada", "review")

    got = listed(setup, min_confidence=1.0)
    assert got == {it[0]: ["annotators disagree"], it[3]: ["annotators disagree"]}
    body = setup["client"].get(f"/api/projects/{pid}/review", headers=setup["admin"]).json()
    first = body["items"][0]
    assert first["item_id"] == it[0] and body["model_id"] == setup["model_id"]
    assert [(x["annotator"], x["class_name"]) for x in first["labels"]] == [("ann", "cat"), ("bob", "dog")]
    assert first["record"]["class_name"] in ("cat", "dog")
    assert first["guess"] == {"model_id": setup["model_id"], "class_id": 0, "class_name": "cat",
                              "confidence": pytest.approx(0.4)}
    third = body["items"][1]
    assert [(x["annotator"], x["class_name"]) for x in third["labels"]] == [("ann", "cat"), ("bob", "bird"),
                                                                           ("cy", "bird")]
    assert third["record"]["class_name"] == "bird"


def test_model_disagreement_listed_above_the_threshold_only(setup, engine):
    pid, it = setup["project_id"], setup["items"]
    label(engine, pid, it[6], 1, "ann")    # guess cat at 0.90: disagrees
    label(engine, pid, it[5], 0, "ann")    # guess bird at 0.8167: disagrees
    label(engine, pid, it[4], 1, "ann")    # guess dog at 0.733: agrees
    label(engine, pid, it[13], 0, "ann")   # guess dog at 0.90: disagrees, but gold settles it? no: a ui label
    assert listed(setup) == {it[6]: ["model disagrees"], it[13]: ["model disagrees"]}  # default 0.9
    assert listed(setup, min_confidence=0.95) == {}
    assert set(listed(setup, min_confidence=0.8)) == {it[5], it[6], it[13]}
    assert set(listed(setup, min_confidence=0.0)) == {it[5], it[6], it[13]}  # it[4] agrees with its guess
    # Annotators disagree and the model too: both reasons.
    label(engine, pid, it[6], 2, "bob")
    assert listed(setup)[it[6]] == ["annotators disagree", "model disagrees"]


def test_adjudication_writes_a_review_label_that_becomes_the_label_of_record(setup, engine):
    c, pid, it = setup["client"], setup["project_id"], setup["items"]
    label(engine, pid, it[0], 0, "ann"); label(engine, pid, it[0], 1, "bob")
    before = record(engine, pid, it[0])
    assert before.class_id in (0, 1)
    with engine.connect() as conn:
        last_id = conn.execute(select(func.max(annotations.c.annotation_id))).scalar_one()
    r = c.post(f"/api/projects/{pid}/review", json={"item_id": it[0], "class_id": 2, "seconds": 3.5},
               headers=setup["admin"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["annotation_id"] > last_id
    assert body["record"] == {"class_id": 2, "class_name": "bird", "annotator": "ada", "source": "review",
                              "annotation_id": body["annotation_id"]}
    with engine.connect() as conn:
        row = conn.execute(select(annotations).where(annotations.c.annotation_id == body["annotation_id"])).one()
        train = conn.execute(select(training_set.c.class_id).where(training_set.c.project_id == pid,
                                                                   training_set.c.item_id == it[0])).scalar_one()
    assert (row.item_id, row.class_id, row.annotator, row.source, row.seconds) == (it[0], 2, "ada", "review", 3.5)
    assert tuple(record(engine, pid, it[0])) == (2, "review") and train == 2
    assert it[0] not in listed(setup, min_confidence=0.0)  # decided: it left the queue


def test_bad_decisions_are_refused_and_write_nothing(setup, engine):
    c, pid, it = setup["client"], setup["project_id"], setup["items"]
    with engine.connect() as conn:
        n0 = conn.execute(select(func.count()).select_from(annotations)).scalar_one()
    r = c.post(f"/api/projects/{pid}/review", json={"item_id": it[0], "class_id": 3}, headers=setup["admin"])
    assert r.status_code == 400 and "class_id 3" in r.json()["detail"] and "bird" in r.json()["detail"]
    r = c.post(f"/api/projects/{pid}/review", json={"item_id": 10**9, "class_id": 0}, headers=setup["admin"])
    assert r.status_code == 400 and "no such item" in r.json()["detail"]
    r = c.post(f"/api/projects/{pid}/review", json={"item_id": it[0], "class_id": 0, "seconds": -1},
               headers=setup["admin"])
    assert r.status_code == 422
    for bad in ({"min_confidence": "1.5"}, {"min_confidence": "nan"}, {"limit": "0"}, {"after": "-1"}):
        assert c.get(f"/api/projects/{pid}/review", params=bad, headers=setup["admin"]).status_code == 422, bad
    assert c.get("/api/projects/999/review", headers=setup["admin"]).status_code == 404
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(annotations)).scalar_one() == n0


def test_annotators_are_refused(setup, engine):
    c, pid, it = setup["client"], setup["project_id"], setup["items"]
    label(engine, pid, it[0], 0, "ann"); label(engine, pid, it[0], 1, "bob")
    assert c.get(f"/api/projects/{pid}/review", headers=setup["ann"]).status_code == 403
    r = c.post(f"/api/projects/{pid}/review", json={"item_id": it[0], "class_id": 2}, headers=setup["ann"])
    assert r.status_code == 403 and "reviewer" in r.json()["detail"]
    assert c.get(f"/projects/{pid}/review", headers=setup["ann"]).status_code == 403
    assert c.get("/api/projects/1/review").status_code == 401
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(annotations)
                            .where(annotations.c.source == "review")).scalar_one() == 0
    page = c.get(f"/projects/{pid}/review", headers=setup["admin"])
    assert page.status_code == 200 and 'id="review-app"' in page.text and 'id="nav-review"' in page.text
    label_page = c.get(f"/projects/{pid}/label", headers=setup["ann"])
    assert 'id="nav-review"' not in label_page.text


def test_keyset_pages_reach_every_item_with_bounded_windows(setup, engine, monkeypatch):
    from alsql.web import review

    pid, it = setup["project_id"], setup["items"]
    for k in range(0, 21, 2):  # every other item: two annotators disagree
        label(engine, pid, it[k], 0, "ann"); label(engine, pid, it[k], 1, "bob")
    want = [it[k] for k in range(0, 21, 2)]
    monkeypatch.setattr(review, "SPAN", 3)          # three item ids per window
    monkeypatch.setattr(review, "MAX_WINDOWS", 2)   # at most six item ids per request
    seen, after, requests = [], 0, 0
    while after is not None:
        r = setup["client"].get(f"/api/projects/{pid}/review",
                                params={"after": after, "limit": 2, "min_confidence": 1.0}, headers=setup["admin"])
        body = r.json()
        ids = [x["item_id"] for x in body["items"]]
        assert len(ids) <= 2 and ids == sorted(ids) and all(i > after for i in ids)
        assert body["next_after"] is None or body["next_after"] - after <= 6
        seen += ids
        after, requests = body["next_after"], requests + 1
        assert requests < 50
    assert seen == want


def test_reviewers_review_and_their_decision_outlasts_later_labels(setup, engine):
    from alsql.web.auth import add_user

    c, pid, it = setup["client"], setup["project_id"], setup["items"]
    with write_transaction(engine) as conn:
        add_user(conn, "rita", "reviewer", token="tok-review-0123456789")
    rita = {"Authorization": "Bearer tok-review-0123456789"}
    label(engine, pid, it[0], 0, "ann"); label(engine, pid, it[0], 1, "bob")
    assert [x["item_id"] for x in c.get(f"/api/projects/{pid}/review", headers=rita).json()["items"]] == [it[0]]
    r = c.post(f"/api/projects/{pid}/review", json={"item_id": it[0], "class_id": 1}, headers=rita)
    assert r.status_code == 200 and r.json()["record"]["annotator"] == "rita"
    assert c.get(f"/projects/{pid}/review", headers=rita).status_code == 200
    # Two annotators outvote nobody: a review decision wins over every later label.
    label(engine, pid, it[0], 0, "cy"); label(engine, pid, it[0], 0, "dee")
    assert tuple(record(engine, pid, it[0])) == (1, "review")
    assert it[0] not in listed(setup, min_confidence=0.0)
    # The same reviewer may change the decision: the latest review wins.
    c.post(f"/api/projects/{pid}/review", json={"item_id": it[0], "class_id": 2}, headers=rita)
    assert tuple(record(engine, pid, it[0])) == (2, "review")


def test_gold_items_are_settled_and_not_listed(setup, engine):
    pid, it = setup["project_id"], setup["items"]
    label(engine, pid, it[0], 0, "gold", "gold"); label(engine, pid, it[0], 1, "ann"); label(engine, pid, it[0], 2, "bob")
    label(engine, pid, it[6], 1, "gold", "gold")  # gold dog, model says cat at 0.90
    assert listed(setup, min_confidence=0.0) == {}


def test_an_annotator_sees_only_own_labels_on_an_overlapped_item(setup, engine):
    """Agreement needs independent labels: on an overlapped project, the item endpoint shows an
    annotator their own labels only (gold never), while an admin sees every label."""
    from alsql.quality import is_overlapped, write_settings

    pid, it = setup["project_id"], setup["items"]
    with write_transaction(engine) as conn:
        write_settings(conn, pid, overlap=0.5)
    over = next(i for i in it if is_overlapped(i, 0.5))
    plain = next(i for i in it if not is_overlapped(i, 0.5))
    for item in (over, plain):
        label(engine, pid, item, 1, "bob")
        label(engine, pid, item, 2, "ann")
        label(engine, pid, item, 0, "gold", "gold")

    def seen(item, who):
        r = setup["client"].get(f"/api/projects/{pid}/items/{item}", headers=setup[who])
        assert r.status_code == 200, r.text
        return [(h["annotator"], h["class_id"]) for h in r.json()["history"]]

    assert seen(over, "ann") == [("ann", 2)]
    assert seen(over, "admin") == [("bob", 1), ("ann", 2)]
    assert seen(plain, "ann") == [("bob", 1), ("ann", 2)]


def test_the_item_shows_its_label_of_record_not_merely_the_newest_label(setup, engine):
    """The labeling page marks ``record`` (the rule of current_labels): the majority over a
    newer dissent, a review over both; a gold label only for reviewers and admins."""
    pid, it = setup["project_id"], setup["items"]

    def shown(item, who):
        r = setup["client"].get(f"/api/projects/{pid}/items/{item}", headers=setup[who])
        assert r.status_code == 200, r.text
        rec = r.json()["record"]
        return rec and (rec["class_id"], rec["annotation_id"])

    first = label(engine, pid, it[0], 1, "ann")
    agree = label(engine, pid, it[0], 1, "carl")
    label(engine, pid, it[0], 2, "bob")  # the newest label is the minority
    assert shown(it[0], "admin") == shown(it[0], "ann") == (1, agree) and first < agree
    assert record(engine, pid, it[0]).class_id == 1
    decided = label(engine, pid, it[0], 2, "admin", "review")
    assert shown(it[0], "admin") == (2, decided) and record(engine, pid, it[0]).class_id == 2
    mine = label(engine, pid, it[1], 1, "ann")
    gold = label(engine, pid, it[1], 0, "gold", "gold")
    assert shown(it[1], "admin") == (0, gold) and record(engine, pid, it[1]).class_id == 0
    assert shown(it[1], "ann") == (1, mine)  # an annotator never learns the gold label
    assert shown(it[2], "ann") is None
