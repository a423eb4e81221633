"""Fill a database with demo-like data for the dbt marts and the validation suites.

Three projects whose items carry the entity conventions the seeds in
``alsql/dbt_project/seeds`` join on (see docs/analysts.md):

- ``traffic``: cameras ``cam-011`` .. ``cam-022``, 5 images each; a camera's true
  intersection type is ``TRAFFIC_CLASSES[n % 4]`` for camera number ``n``.
- ``products``: serials ``SN-000115`` .. ``SN-000134``, 2 images each; true class
  ``dent`` when ``n % 5 == 0``, ``scratch`` when ``n % 5 == 1``, else ``ok``.
- ``machines``: ``machine-01`` .. ``machine-08``, 6 images two weeks apart; image
  ``k`` of machine ``m`` shows an ``anomaly`` when ``(m + k) % 4 == 0``.

Each project gets an evaluation round (oracle labels), a train round (human labels,
one of them corrected), and two model versions whose predictions (float16 probs)
and embeddings cover every item of the project; the second model is the better one.
A third model version is still training (no predictions).
Everything goes through alsql's Python API or SQLAlchemy Core inserts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import Engine, insert

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.schema import embeddings, items, model_versions, predictions, round_items, rounds

__all__ = [
    "TRAFFIC_CLASSES", "PRODUCT_CLASSES", "MACHINE_CLASSES", "Populated",
    "camera_type", "product_class", "machine_image", "populate",
]

TRAFFIC_CLASSES = ["four_way", "t_junction", "roundabout", "no_intersection"]
PRODUCT_CLASSES = ["ok", "scratch", "dent"]
MACHINE_CLASSES = ["normal", "anomaly"]
CAMERAS = range(11, 23)
SERIALS = range(115, 135)
MACHINES = range(1, 9)
T0 = datetime(2024, 1, 5, 8, 0, tzinfo=timezone.utc)


def camera_type(n: int) -> str:
    return TRAFFIC_CLASSES[n % 4]


def product_class(n: int) -> str:
    return "dent" if n % 5 == 0 else "scratch" if n % 5 == 1 else "ok"


def machine_image(m: int, k: int) -> tuple[datetime, str]:
    """Capture time and true class of image ``k`` of machine ``m``."""
    return T0 + timedelta(days=14 * k, hours=m), ("anomaly" if (m + k) % 4 == 0 else "normal")


@dataclass
class Populated:
    """Ids of what ``populate`` wrote, per project name."""

    projects: dict[str, int] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)
    items: dict[str, list[int]] = field(default_factory=dict)
    models: dict[str, list[int]] = field(default_factory=dict)


def _items(kind: str) -> list[dict]:
    rows = []
    if kind == "traffic":
        for n in CAMERAS:
            for k in range(5):
                rows.append({"entity": f"cam-{n:03d}", "truth": camera_type(n),
                             "captured_at": T0 + timedelta(days=20 * k, hours=n),
                             "latitude": 47.37 + n / 1000, "longitude": 8.54 + k / 1000,
                             "attributes": {"lighting": "night" if k % 2 else "day",
                                            "site": "north" if n < 17 else "south"}})
    elif kind == "products":
        for n in SERIALS:
            for k in range(2):
                rows.append({"entity": f"SN-{n:06d}", "truth": product_class(n),
                             "captured_at": T0 + timedelta(days=n - 100, minutes=k),
                             "latitude": None, "longitude": None,
                             "attributes": {"lighting": "lamp", "site": f"line-{1 + n % 2}"}})
    else:
        for m in MACHINES:
            for k in range(6):
                at, truth = machine_image(m, k)
                rows.append({"entity": f"machine-{m:02d}", "truth": truth, "captured_at": at,
                             "latitude": 52.5, "longitude": 13.4,
                             "attributes": {"lighting": "day", "site": "plant-a" if m <= 4 else "plant-b"}})
    for i, r in enumerate(rows):
        r["uri"] = f"file:///demo/{kind}/{r['entity']}/{i:04d}.png"
        r["sha256"] = hashlib.sha256(r["uri"].encode()).hexdigest()
    return rows


def _probs(rng: np.random.Generator, n_classes: int, truth: int, accuracy: float) -> np.ndarray:
    guess = truth if rng.random() < accuracy else int(rng.integers(n_classes))
    logits = rng.normal(0, 0.5, n_classes)
    logits[guess] += 2.5
    p = np.exp(logits - logits.max())
    return (p / p.sum()).astype(np.float16)


def _add_project(engine: Engine, kind: str, class_names: list[str], rng: np.random.Generator, out: Populated) -> None:
    rows = _items(kind)
    with write_transaction(engine) as conn:
        project = create_project(conn, kind, class_names, f"{kind} (marts test data)")
        ids = list(conn.execute(
            insert(items).returning(items.c.item_id, sort_by_parameter_order=True),
            [{k: v for k, v in r.items() if k != "truth"} | {"media_type": "image/png", "width": 64, "height": 48}
             for r in rows],
        ).scalars())
    truth = {i: class_names.index(r["truth"]) for i, r in zip(ids, rows)}
    pid = project.project_id
    order = [ids[j] for j in rng.permutation(len(ids))]
    n_eval, n_train = len(ids) * 3 // 10, len(ids) * 4 // 10
    evaluation, train = order[:n_eval], order[n_eval:n_eval + n_train]
    day = T0 + timedelta(days=180)
    with write_transaction(engine) as conn:
        for purpose, picked, source in (("evaluation", evaluation, "oracle"), ("train", train, "ui")):
            rid = conn.execute(insert(rounds).values(
                project_id=pid, strategy="random", purpose=purpose, budget=len(picked), status="closed",
                created_at=day).returning(rounds.c.round_id)).scalar_one()
            conn.execute(insert(round_items), [
                {"round_id": rid, "rank": r, "item_id": i, "score": None, "status": "labeled", "labeled_at": day}
                for r, i in enumerate(picked)])
            insert_annotations(conn, [
                {"project_id": pid, "item_id": i, "class_id": truth[i], "annotator": source if source == "oracle" else "alice",
                 "source": source, "seconds": 2.5, "created_at": day + timedelta(days=r % 3, minutes=r)}
                for r, i in enumerate(picked)])
        # A correction: a wrong label first, the right one a day later (the label of record).
        fixed = train[0]
        insert_annotations(conn, [
            {"project_id": pid, "item_id": fixed, "class_id": (truth[fixed] + 1) % len(class_names),
             "annotator": "bob", "source": "review", "created_at": day + timedelta(days=3)},
            {"project_id": pid, "item_id": fixed, "class_id": truth[fixed], "annotator": "alice",
             "source": "review", "created_at": day + timedelta(days=4)},
        ])
        models = []
        for v, accuracy in ((1, 0.6), (2, 0.9)):
            mid = conn.execute(insert(model_versions).values(
                project_id=pid, name=f"{kind}-v{v}", architecture="smallcnn", label_count=len(train),
                metrics={"accuracy": accuracy}, created_at=day + timedelta(days=4 + v),
            ).returning(model_versions.c.model_id)).scalar_one()
            preds, embs = [], []
            for i in ids:
                p = _probs(rng, len(class_names), truth[i], accuracy)
                top = np.sort(p.astype(np.float32))[::-1]
                pf = p.astype(np.float64)
                preds.append({"model_id": mid, "item_id": i, "class_id": int(np.argmax(p)),
                              "confidence": float(top[0]), "margin": float(top[0] - top[1]),
                              "entropy": float(-(pf * np.log(np.clip(pf, 1e-12, None))).sum()),
                              "bald": None, "probs": p.tobytes()})
                vec = rng.normal(size=8).astype(np.float16)
                embs.append({"model_id": mid, "item_id": i, "vector": vec.tobytes(),
                             "x": float(vec[0]), "y": float(vec[1])})
            conn.execute(insert(predictions), preds)
            conn.execute(insert(embeddings), embs)
            models.append(mid)
        # A third model still training: no predictions yet, so it is nobody's "latest model".
        conn.execute(insert(model_versions).values(
            project_id=pid, name=f"{kind}-v3", architecture="smallcnn", label_count=len(train), status="training",
            created_at=day + timedelta(days=7)))
    out.projects[kind], out.classes[kind], out.items[kind], out.models[kind] = pid, class_names, ids, models


def populate(engine: Engine, seed: int = 0) -> Populated:
    """Write the three projects; return their ids."""
    rng = np.random.default_rng(seed)
    out = Populated()
    for kind, classes in (("traffic", TRAFFIC_CLASSES), ("products", PRODUCT_CLASSES),
                          ("machines", MACHINE_CLASSES)):
        _add_project(engine, kind, classes, rng, out)
    return out
