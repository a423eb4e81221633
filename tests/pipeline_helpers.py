"""Tiny image projects for the pipeline tests: 8x8 PNGs whose class is their brightness band."""

from __future__ import annotations

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.schema import items, predictions

CLASSES = ["dark", "mid", "bright"]
# Fast training for tests: one short epoch.
QUICK_TRAIN = {"epochs": 1, "min_steps": 1, "max_epochs": 1, "batch_size": 32, "patience": 100, "image_size": 8}


def write_pngs(folder, n: int, seed: int = 0, start: int = 0) -> dict[str, int]:
    """``n`` 8x8 grayscale PNGs in ``folder``; returns ``{file name: class id}``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(start, start + n):
        k = int(rng.integers(len(CLASSES)))
        px = np.clip(rng.normal(40 + 85 * k, 20, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(px, mode="L").save(folder / f"{i:05d}.png")
        truth[f"{i:05d}.png"] = k
    return truth


def make_project(engine, folder, n: int = 120, name: str = "bands", seed: int = 0):
    """Ingest ``n`` PNGs into a new project; return ``(project, {item_id: class})``."""
    from alsql.loaders.ingest import ingest

    truth = write_pngs(folder, n, seed)
    ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        proj = create_project(conn, name, CLASSES)
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri)).all()
    oracle = {r.item_id: truth[r.uri.rsplit("/", 1)[1]] for r in rows if r.uri.rsplit("/", 1)[1] in truth}
    return proj, oracle


def label(engine, project_id: int, oracle: dict[int, int], item_ids) -> None:
    """Import labels for ``item_ids`` from the oracle (as ``alsql labels import`` would)."""
    rows = [{"project_id": project_id, "item_id": int(i), "class_id": oracle[int(i)], "source": "import"}
            for i in item_ids]
    with write_transaction(engine) as conn:
        insert_annotations(conn, rows)


def prediction_counts(engine, model_id: int) -> tuple[int, int]:
    """``(prediction rows, distinct items)`` of the model."""
    with engine.connect() as conn:
        return tuple(conn.execute(
            select(func.count(), func.count(func.distinct(predictions.c.item_id))).where(predictions.c.model_id == model_id)
        ).one())
