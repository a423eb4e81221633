"""A zone-safety project for the business_events marts, and its accidents table.

Project ``zones``: cameras ``cam-101`` .. ``cam-106`` each film a 10-minute video cut
into 300 segments of 2 s (items with start_s / end_s; captured_at = the video's start
plus the segment's start, half a second past a whole second). A segment's true class is
``normal``, ``worker_in_zone`` or ``forklift``. Accidents (the analyst's table, naive UTC
times with milliseconds) follow 60% of the worker segments within 0-40 s of their end, and
happen at random otherwise; three sit exactly on window boundaries (the start of a
segment, 30 s after the end of one, 60 s before the start of one).

An evaluation round labels a third of the segments (oracle), a train round a fifth
(``ui``); one model version predicts every segment with 85% accuracy. Python computes
the reference counts from the same values (:func:`reference_counts`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import Column, DateTime, Engine, Float, Integer, MetaData, String, Table, insert

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.schema import items, model_versions, predictions, round_items, rounds

__all__ = ["ZONE_CLASSES", "Zones", "add_zones", "write_accidents", "reference_counts", "EPOCH"]

ZONE_CLASSES = ["normal", "worker_in_zone", "forklift"]
CAMERAS = [f"cam-{n}" for n in range(101, 107)]
SEGMENTS, SEGMENT_S = 300, 2.0
EPOCH = datetime(1970, 1, 1)
T0 = datetime(2025, 6, 2, 7, 0, 0)


@dataclass
class Zones:
    """What :func:`add_zones` wrote: per item its entity, span (epoch seconds), true,
    predicted and labeled class; the accidents as (id, camera, epoch seconds, injuries)."""

    project_id: int = 0
    model_id: int = 0
    items: dict[int, dict] = field(default_factory=dict)
    accidents: list[tuple[int, str, float, int]] = field(default_factory=list)


def _seconds(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


def add_zones(engine: Engine, seed: int = 3) -> Zones:
    rng = np.random.default_rng(seed)
    out = Zones()
    rows, meta = [], []
    for c, camera in enumerate(CAMERAS):
        start = T0 + timedelta(hours=c, seconds=0.5)
        for k in range(SEGMENTS):
            truth = int(rng.choice(3, p=[0.9, 0.03, 0.07]))
            at = start + timedelta(seconds=k * SEGMENT_S)
            uri = f"file:///zones/{camera}.mp4#t={k * SEGMENT_S:g},{(k + 1) * SEGMENT_S:g}"
            rows.append({"uri": uri, "sha256": hashlib.sha256(uri.encode()).hexdigest(), "media_type": "video/mp4",
                         "width": 64, "height": 48, "entity": camera,
                         "captured_at": at.replace(tzinfo=timezone.utc),
                         "start_s": k * SEGMENT_S, "end_s": (k + 1) * SEGMENT_S, "duration": SEGMENT_S})
            meta.append({"entity": camera, "start": _seconds(at), "end": _seconds(at) + SEGMENT_S, "truth": truth})
    with write_transaction(engine) as conn:
        project = create_project(conn, "zones", ZONE_CLASSES, "zone safety (business events test data)")
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True),
                                rows).scalars())
    out.project_id = pid = project.project_id
    for i, m in zip(ids, meta):
        out.items[i] = m
    order = [ids[j] for j in rng.permutation(len(ids))]
    evaluation, train = order[:len(ids) // 3], order[len(ids) // 3:len(ids) // 3 + len(ids) // 5]
    day = T0 + timedelta(days=10)
    with write_transaction(engine) as conn:
        for purpose, picked, source in (("evaluation", evaluation, "oracle"), ("train", train, "ui")):
            rid = conn.execute(insert(rounds).values(
                project_id=pid, strategy="random", purpose=purpose, budget=len(picked), status="closed",
                created_at=day).returning(rounds.c.round_id)).scalar_one()
            conn.execute(insert(round_items), [
                {"round_id": rid, "rank": r, "item_id": i, "score": None, "status": "labeled", "labeled_at": day}
                for r, i in enumerate(picked)])
            insert_annotations(conn, [
                {"project_id": pid, "item_id": i, "class_id": out.items[i]["truth"],
                 "annotator": "oracle" if source == "oracle" else "alice", "source": source, "seconds": 1.0,
                 "created_at": day} for i in picked])
            for i in picked:
                out.items[i]["label"] = out.items[i]["truth"]
                out.items[i]["evaluation"] = purpose == "evaluation"
        out.model_id = mid = conn.execute(insert(model_versions).values(
            project_id=pid, name="zones-v1", architecture="smallcnn", label_count=len(train), metrics={},
            created_at=day + timedelta(days=1)).returning(model_versions.c.model_id)).scalar_one()
        preds = []
        for i in ids:
            truth = out.items[i]["truth"]
            guess = truth if rng.random() < 0.85 else int(rng.integers(3))
            out.items[i]["predicted"] = guess
            preds.append({"model_id": mid, "item_id": i, "class_id": guess, "confidence": 0.8, "margin": 0.5,
                          "entropy": 0.3, "bald": None, "probs": np.full(3, 1 / 3, dtype=np.float16).tobytes()})
        conn.execute(insert(predictions), preds)
    # The accidents: after 60% of the worker segments, and at random on every camera.
    aid = 0
    for m in meta:
        if m["truth"] == 1 and rng.random() < 0.6:
            aid += 1
            out.accidents.append((aid, m["entity"], round(m["end"] + rng.uniform(0, 40), 3), int(rng.integers(0, 3))))
    for camera in CAMERAS:
        base = _seconds(T0) + CAMERAS.index(camera) * 3600
        for _ in range(2):
            aid += 1
            out.accidents.append((aid, camera, round(base + rng.uniform(-100, 700), 3), int(rng.integers(0, 3))))
    first = meta[10]
    for at in (first["start"], first["end"] + 30.0, meta[40]["start"] - 60.0):  # exactly on the boundaries
        aid += 1
        out.accidents.append((aid, first["entity"], at, 1))
    return out


def accidents_table(schema: str | None = None, name: str = "zone_accidents") -> Table:
    return Table(name, MetaData(schema=schema),
                 Column("accident_id", Integer, primary_key=True, autoincrement=False),
                 Column("camera", String(50)),
                 Column("occurred_at", DateTime),
                 Column("injuries", Integer),
                 Column("cost_usd", Float))


def write_accidents(engine: Engine, zones: Zones, schema: str | None = None, name: str = "zone_accidents") -> None:
    """(Re)create the accidents table (in ``schema``) with the accidents of ``zones``, plus
    two rows the marts must leave out (no camera, no time)."""
    table = accidents_table(schema, name)
    rows = [{"accident_id": a, "camera": cam, "occurred_at": EPOCH + timedelta(seconds=s), "injuries": inj,
             "cost_usd": 100.0 * inj + 50} for a, cam, s, inj in zones.accidents]
    rows += [{"accident_id": 10_001, "camera": None, "occurred_at": T0, "injuries": 9, "cost_usd": 1.0},
             {"accident_id": 10_002, "camera": CAMERAS[0], "occurred_at": None, "injuries": 9, "cost_usd": 1.0}]
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        conn.execute(table.insert(), rows)


def reference_counts(zones: Zones, before: float, after: float) -> dict[int, dict]:
    """Per item: events before, during and after it, and injuries summed after it."""
    out = {}
    for i, m in zones.items.items():
        r = {"before": 0, "during": 0, "after": 0, "injuries_after": 0}
        for _, cam, s, inj in zones.accidents:
            if cam != m["entity"]:
                continue
            if m["start"] - before <= s < m["start"]:
                r["before"] += 1
            elif m["start"] <= s <= m["end"]:
                r["during"] += 1
            elif m["end"] < s <= m["end"] + after:
                r["after"] += 1
                r["injuries_after"] += inj
        out[i] = r
    return out
