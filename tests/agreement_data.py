"""Simulated annotators with known error rates, for the annotation-quality marts and page.

``simulate`` writes three projects through alsql's Python API and returns what it wrote,
so tests compute every figure in Python from the simulation, not from SQL:

- ``birds`` (4 classes, 360 items): annotators ``ann``, ``ben``, ``cat``, ``dan`` label
  each item with probability 0.55 and err at their rate in ``ERROR_RATES`` (a wrong class
  drawn uniformly); a tenth of their labels follow an earlier wrong one (a correction:
  the newest counts). ``eve`` labels only the first 30 items, ``fay`` only the last 30:
  that pair shares no item. Every other item carries a gold label (the truth) when ``gold``
  is set; a reviewer decides 15 items, the simulated oracle labels 10 and an
  import without an annotator 5: none of them is a rater.
- ``mono`` (2 classes, 20 items): ``xia`` and ``yan`` give class 0 to every item, so
  kappa and alpha are undefined (NULL).
- ``solo`` (3 classes, 12 items): one annotator, ``zoe``: no pair at all.

Labels are two minutes apart (over two days); seconds per label are drawn (a few missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction

__all__ = ["ERROR_RATES", "GOLD_ITEMS", "Simulated", "simulate"]

ERROR_RATES = {"ann": 0.05, "ben": 0.15, "cat": 0.30, "dan": 0.10, "eve": 0.20, "fay": 0.20}
BIRDS = ["sparrow", "finch", "robin", "wren"]
N_BIRDS = 360
GOLD_ITEMS = N_BIRDS // 2  # every other item of birds carries a gold label
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)


@dataclass
class Simulated:
    """What ``simulate`` wrote. ``labels[(project_id, annotator)][item_id]`` is the
    annotator's newest rater label; ``given`` lists every rater label as
    ``(project_id, annotator, day, seconds)``; ``gold[project_id][item_id]`` the gold class;
    ``reviewed`` and ``others`` the items with a review, or an oracle or unnamed label."""

    projects: dict[str, int] = field(default_factory=dict)
    items: dict[str, list[int]] = field(default_factory=dict)
    labels: dict[tuple[int, str], dict[int, int]] = field(default_factory=dict)
    given: list[tuple[int, str, str, float | None]] = field(default_factory=list)
    gold: dict[int, dict[int, int]] = field(default_factory=dict)
    reviewed: dict[int, set[int]] = field(default_factory=dict)
    others: dict[int, set[int]] = field(default_factory=dict)


def _add_items(conn, n: int, name: str) -> list[int]:
    from sqlalchemy import insert

    from alsql.schema import items

    rows = [{"uri": f"file:///quality/{name}/{i:05d}.png", "sha256": f"{name}-{i:05d}".ljust(64, "0"),
             "media_type": "image/png", "width": 8, "height": 8, "status": "ok"} for i in range(n)]
    return list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True), rows).scalars())


def simulate(engine, gold: bool = True, seed: int = 7) -> Simulated:
    """Write the three projects (see the module docstring); return what was written."""
    rng = np.random.default_rng(seed)
    out = Simulated()
    with write_transaction(engine) as conn:
        for name, classes, n in (("birds", BIRDS, N_BIRDS), ("mono", ["empty", "full"], 20),
                                 ("solo", ["a", "b", "c"], 12)):
            out.projects[name] = create_project(conn, name, classes).project_id
            out.items[name] = _add_items(conn, n, name)
    rows: list[dict] = []
    clock = iter(range(10**6))

    def label(name: str, who: str, item: int, cls: int, source: str = "ui", counted: bool = True) -> None:
        pid = out.projects[name]
        k = next(clock)
        at = T0 + timedelta(seconds=120 * k)  # about 2,000 labels over three days
        seconds = None if k % 17 == 0 else round(float(rng.lognormal(1.5, 0.6)), 3)
        rows.append({"project_id": pid, "item_id": item, "class_id": cls, "annotator": who, "source": source,
                     "seconds": seconds, "created_at": at})
        if counted:
            out.labels.setdefault((pid, who), {})[item] = cls
            out.given.append((pid, who, at.date().isoformat(), seconds))

    birds, pid = out.items["birds"], out.projects["birds"]
    truth = {i: int(rng.integers(len(BIRDS))) for i in birds}
    for n, i in enumerate(birds):
        for who, err in ERROR_RATES.items():
            if who == "eve" and n >= 30 or who == "fay" and n < N_BIRDS - 30 or (
                    who not in ("eve", "fay") and rng.random() >= 0.55):
                continue
            cls = truth[i]
            if rng.random() < err:
                cls = (cls + int(rng.integers(1, len(BIRDS)))) % len(BIRDS)
            if rng.random() < 0.1:  # a first, wrong answer, then the one that counts
                label("birds", who, i, (cls + 1) % len(BIRDS))
            label("birds", who, i, cls)
    out.gold[pid] = {i: truth[i] for i in birds[::2]} if gold else {}
    for i, cls in out.gold[pid].items():
        rows.append({"project_id": pid, "item_id": i, "class_id": cls, "annotator": "curator",
                     "source": "gold", "created_at": T0 - timedelta(days=1)})
    out.reviewed[pid] = set(birds[200:215])
    for i in birds[200:215]:
        label("birds", "rita", i, truth[i], source="review", counted=False)
    out.others[pid] = set(birds[215:230])  # labels of the label of record that are no rater's
    for i in birds[215:225]:
        label("birds", "oracle", i, truth[i], source="oracle", counted=False)
    for i in birds[225:230]:
        label("birds", None, i, (truth[i] + 1) % len(BIRDS), source="import", counted=False)
    for who in ("xia", "yan"):
        for i in out.items["mono"]:
            label("mono", who, i, 0)
    for i in out.items["solo"]:
        label("solo", "zoe", i, i % 3)
    rows.sort(key=lambda r: r["created_at"])  # annotation ids grow with time, as in the app
    with write_transaction(engine) as conn:
        insert_annotations(conn, rows)
    return out
