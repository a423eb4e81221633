"""The training views on SQLite and PostgreSQL: current label, train/evaluation split, pool."""

from __future__ import annotations

from sqlalchemy import insert, select

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.schema import (
    current_labels,
    evaluation_set,
    items,
    round_items,
    rounds,
    training_set,
    unlabeled_pool,
)
from tests.conftest import add_items


def test_views_split_labels_and_pool(engine, project):
    ids = add_items(engine, 6)
    bad = add_items(engine, 1, start=100, status="corrupt")
    pid = project.project_id
    with write_transaction(engine) as conn:
        insert_annotations(conn, [
            {"project_id": pid, "item_id": ids[0], "class_id": 1},
            {"project_id": pid, "item_id": ids[1], "class_id": 2},
            {"project_id": pid, "item_id": ids[2], "class_id": 3},
            {"project_id": pid, "item_id": bad[0], "class_id": 0},
        ])
        # a correction is a new row: the latest wins
        insert_annotations(conn, [{"project_id": pid, "item_id": ids[0], "class_id": 4}])
        rid = conn.execute(
            insert(rounds).values(project_id=pid, strategy="random", purpose="evaluation", budget=1)
            .returning(rounds.c.round_id)
        ).scalar_one()
        conn.execute(insert(round_items).values(round_id=rid, rank=0, item_id=ids[2]))
    with engine.connect() as conn:
        cur = dict(conn.execute(select(current_labels.c.item_id, current_labels.c.class_id)).all())
        assert cur == {ids[0]: 4, ids[1]: 2, ids[2]: 3, bad[0]: 0}
        train = conn.execute(select(training_set.c.item_id).order_by(training_set.c.item_id)).scalars().all()
        assert train == [ids[0], ids[1]]  # not the evaluation item, not the corrupt one
        evals = conn.execute(select(evaluation_set.c.item_id)).scalars().all()
        assert evals == [ids[2]]
        pool = conn.execute(
            select(unlabeled_pool.c.item_id).where(unlabeled_pool.c.project_id == pid).order_by(unlabeled_pool.c.item_id)
        ).scalars().all()
        assert pool == ids[3:]
        n_items = len(conn.execute(select(items.c.item_id)).all())
        assert n_items == 7


def test_annotation_ids_grow_with_insertion(engine, project):
    ids = add_items(engine, 3)
    with write_transaction(engine) as conn:
        a = insert_annotations(conn, [{"project_id": project.project_id, "item_id": i, "class_id": 0} for i in ids])
        b = insert_annotations(conn, [{"project_id": project.project_id, "item_id": ids[0], "class_id": 1}])
    assert a == sorted(a) and len(set(a)) == 3
    assert b[0] > max(a)
