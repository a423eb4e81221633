"""The label of record (``current_labels``, docs/quality.md) on SQLite and PostgreSQL.

A review decision wins; else a gold label; else the majority of each annotator's latest
label; a tie goes to the annotator whose first annotation on the item is the earliest.
"""

from __future__ import annotations

import random

from sqlalchemy import insert, select

from alsql.annotate import insert_annotations, label_of_record
from alsql.db import write_transaction
from alsql.schema import annotations, current_labels, evaluation_set, round_items, rounds, training_set
from tests.conftest import add_items


def _label(engine, pid, item, cls, who, source="ui"):
    with write_transaction(engine) as conn:
        return insert_annotations(conn, [{"project_id": pid, "item_id": item, "class_id": cls,
                                          "annotator": who, "source": source}])[0]


def _record(engine, view=current_labels):
    with engine.connect() as conn:
        return {r.item_id: (r.class_id, r.annotation_id)
                for r in conn.execute(select(view.c.item_id, view.c.class_id, view.c.annotation_id))}


def test_rule_cases(engine, project):
    pid = project.project_id
    one, mind, major, tie, tie2, gold, review, nobody = add_items(engine, 8)
    # one annotator: the latest row, as before
    a1 = _label(engine, pid, one, 2, "ann")
    # one annotator changes their mind: their latest label is their one vote
    _label(engine, pid, mind, 1, "ann")
    _label(engine, pid, mind, 1, "bob")
    _label(engine, pid, mind, 3, "ann")
    _label(engine, pid, mind, 3, "ann")
    m3 = _label(engine, pid, mind, 3, "cyd")  # ann 3, bob 1, cyd 3 -> 3
    _label(engine, pid, mind, 1, "bob")  # bob again: still one vote for 1
    # majority of three annotators beats the latest row
    _label(engine, pid, major, 4, "ann")
    j2 = _label(engine, pid, major, 4, "bob")
    _label(engine, pid, major, 0, "cyd")
    # a tie: the annotator whose first annotation is earliest wins, even after changing their mind
    _label(engine, pid, tie, 0, "ann")  # ann's first
    _label(engine, pid, tie, 1, "bob")
    t3 = _label(engine, pid, tie, 2, "ann")  # ann's latest: 2 vs bob's 1 -> ann's 2
    _label(engine, pid, tie2, 1, "bob")
    _label(engine, pid, tie2, 3, None)  # an unnamed import counts as one annotator
    # gold beats a majority, a review beats gold
    _label(engine, pid, gold, 1, "ann")
    _label(engine, pid, gold, 1, "bob")
    g = _label(engine, pid, gold, 2, "gold", source="gold")
    _label(engine, pid, gold, 1, "cyd")  # a later vote does not beat gold
    _label(engine, pid, review, 1, "ann")
    _label(engine, pid, review, 1, "gold", source="gold")
    r = _label(engine, pid, review, 4, "rev", source="review")
    _label(engine, pid, review, 2, "ann")  # a later vote does not beat the review

    rec = _record(engine)
    assert nobody not in rec
    assert rec[one] == (2, a1)
    assert rec[mind] == (3, m3)  # the class's latest vote carries it
    assert rec[major] == (4, j2)
    assert rec[tie] == (2, t3)
    assert rec[tie2][0] == 1
    assert rec[gold] == (2, g)
    assert rec[review] == (4, r)
    with engine.connect() as conn:  # every column comes from the chosen row
        row = conn.execute(select(current_labels).where(current_labels.c.item_id == review)).one()
    assert (row.annotator, row.source, row.class_id) == ("rev", "review", 4)


def test_a_review_decision_changes_the_training_set(engine, project):
    pid = project.project_id
    item, other = add_items(engine, 2)
    _label(engine, pid, item, 0, "ann")
    _label(engine, pid, item, 0, "bob")
    _label(engine, pid, item, 1, "cyd")
    _label(engine, pid, other, 3, "ann")
    assert _record(engine, training_set)[item][0] == 0
    r = _label(engine, pid, item, 1, "rev", source="review")
    assert _record(engine, training_set)[item] == (1, r)
    assert _record(engine, training_set)[other][0] == 3
    # a later review decision replaces the earlier one
    r2 = _label(engine, pid, item, 2, "rev2", source="review")
    assert _record(engine, training_set)[item] == (2, r2)


def test_evaluation_set_follows_the_rule(engine, project):
    pid = project.project_id
    item, = add_items(engine, 1)
    with write_transaction(engine) as conn:
        rid = conn.execute(insert(rounds).values(project_id=pid, strategy="random", purpose="evaluation", budget=1)
                           .returning(rounds.c.round_id)).scalar_one()
        conn.execute(insert(round_items).values(round_id=rid, rank=0, item_id=item, status="labeled"))
    _label(engine, pid, item, 2, "ann")
    _label(engine, pid, item, 2, "bob")
    _label(engine, pid, item, 4, "cyd")
    assert _record(engine, evaluation_set)[item][0] == 2
    assert item not in _record(engine, training_set)


def test_matches_a_python_reference_on_random_histories(engine, project):
    """Random histories of 1-4 annotators, changes of mind, gold and reviews: the view
    agrees with the rule computed here in Python, item by item."""
    pid = project.project_id
    rng = random.Random(7)
    ids = add_items(engine, 120)
    rows = []
    for item in ids:
        for _ in range(rng.randint(1, 6)):
            src = rng.choices(["ui", "import", "gold", "review"], [70, 10, 5, 5])[0]
            who = {"gold": "gold", "review": "rev"}.get(src) or rng.choice(["a", "b", "c", "d", None])
            rows.append({"project_id": pid, "item_id": item, "class_id": rng.randrange(5), "annotator": who,
                         "source": src})
    rng.shuffle(rows)
    with write_transaction(engine) as conn:
        got_ids = [insert_annotations(conn, [r])[0] for r in rows]
    history: dict[int, list[tuple[int, dict]]] = {}
    for aid, r in zip(got_ids, rows):
        history.setdefault(r["item_id"], []).append((aid, r))
    want = {}
    for item, hist in history.items():
        hist.sort(key=lambda t: t[0])
        reviews = [t for t in hist if t[1]["source"] == "review"]
        golds = [t for t in hist if t[1]["source"] == "gold"]
        if reviews:
            want[item] = (reviews[-1][1]["class_id"], reviews[-1][0])
            continue
        if golds:
            want[item] = (golds[-1][1]["class_id"], golds[-1][0])
            continue
        latest, first = {}, {}
        for aid, r in hist:
            latest[r["annotator"]] = (aid, r["class_id"])
            first.setdefault(r["annotator"], aid)
        votes: dict[int, list] = {}
        for who, (aid, cls) in latest.items():
            votes.setdefault(cls, []).append((first[who], aid))
        cls = min(votes, key=lambda c: (-len(votes[c]), min(f for f, _ in votes[c])))
        want[item] = (cls, max(aid for _, aid in votes[cls]))
    assert _record(engine) == want
    # The labeling app's in-memory rule (one item's rows) agrees too.
    with engine.connect() as conn:
        rows = conn.execute(select(annotations).where(annotations.c.project_id == pid)).all()
    by_item: dict[int, list] = {}
    for r in rows:
        by_item.setdefault(r.item_id, []).append(r)
    assert {item: label_of_record(rs) for item, rs in by_item.items()} == want
