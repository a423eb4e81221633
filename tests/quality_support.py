"""Helpers of the annotation-quality tests: a project with items, gold labels and a round."""

from __future__ import annotations

import random

from sqlalchemy import select

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.models.select import create_round
from alsql.quality import write_settings
from alsql.schema import annotations, item_assignments
from tests.conftest import add_items

CLASSES = ["c0", "c1", "c2", "c3"]


def quality_project(engine, n_items: int, n_gold: int = 0, seed: int = 0, name: str = "quality", **settings) -> dict:
    """``n_items`` items of which ``n_gold`` carry a gold label (their true class), the rest
    in one open random train round; the quality ``settings`` set. ``truth``: item -> class."""
    rng = random.Random(seed)
    ids = add_items(engine, n_items, start=seed * 100_000)
    truth = {i: rng.randrange(len(CLASSES)) for i in ids}
    gold = ids[:n_gold]
    with write_transaction(engine) as conn:
        project = create_project(conn, name, CLASSES)
        insert_annotations(conn, [{"project_id": project.project_id, "item_id": i, "class_id": truth[i],
                                   "annotator": "gold", "source": "gold"} for i in gold])
        if settings:
            write_settings(conn, project.project_id, **settings)
    round_id = create_round(engine, project.project_id, "random", n_items, seed=seed)
    return {"project_id": project.project_id, "items": ids, "gold": set(gold), "truth": truth,
            "round_id": round_id}


def labels_by_item(engine, project_id: int) -> dict[int, list[str]]:
    """item -> annotators of its ui labels, in order."""
    out: dict[int, list[str]] = {}
    with engine.connect() as conn:
        for item, who in conn.execute(select(annotations.c.item_id, annotations.c.annotator)
                                      .where(annotations.c.project_id == project_id, annotations.c.source == "ui")
                                      .order_by(annotations.c.annotation_id)):
            out.setdefault(item, []).append(who)
    return out


def servings(engine, project_id: int, kind: str) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(item_assignments.c.item_id, item_assignments.c.annotator)
            .where(item_assignments.c.project_id == project_id, item_assignments.c.kind == kind))]


def drain(queue, project_id: int, user: str, answer=lambda item: 0, limit: int = 100_000) -> list[int]:
    """``user`` claims one item at a time and labels it with ``answer(item)`` until the queue is empty."""
    done: list[int] = []
    claims = queue.claim(project_id, user, 1)
    while claims and len(done) < limit:
        item = claims[0].item_id
        _, claims = queue.label(project_id, user, item, answer(item), claim_next=1)
        done.append(item)
    return done
