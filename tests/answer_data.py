"""A project for the answer marts' estimator tests: a few thousand items, an evaluation
round of a few hundred oracle labels with inverse-probability weights (as an active
evaluation round stores them), and one model version that is
deliberately imperfect and biased toward the first class, with a confidence that
tracks whether it is right.

Also: synthetic units (the rows of int_answer_units) for estimands that exercise the
estimators directly: weighted means, proportions, a power-tuning lam that clips to 1
and to 0, a group with one label, and a ratio whose groups share their units.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import Engine, insert

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.schema import items, model_versions, predictions, round_items, rounds

__all__ = ["SURVEY_CLASSES", "add_survey", "synthetic_units"]

SURVEY_CLASSES = ["cat_a", "cat_b", "cat_c"]
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def add_survey(engine: Engine, n_items: int = 2400, n_eval: int = 300, seed: int = 7) -> tuple[int, int]:
    """Write the project ``survey``; return (project_id, model_id)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(SURVEY_CLASSES), size=n_items, p=[0.5, 0.3, 0.2])
    rows = []
    for i in range(n_items):
        uri = f"file:///survey/{i:05d}.png"
        rows.append({"uri": uri, "sha256": hashlib.sha256(uri.encode()).hexdigest(), "media_type": "image/png",
                     "width": 32, "height": 32, "entity": f"site-{i % 4}",
                     "captured_at": T0 + timedelta(minutes=i),
                     "attributes": {"lighting": "night" if rng.random() < 0.4 else "day", "site": f"s{i % 3}"}})
    with write_transaction(engine) as conn:
        project = create_project(conn, "survey", SURVEY_CLASSES, "answer marts test data")
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True),
                                rows).scalars())
    pid = project.project_id
    evaluation = [ids[j] for j in rng.permutation(n_items)[:n_eval]]
    day = T0 + timedelta(days=30)
    with write_transaction(engine) as conn:
        rid = conn.execute(insert(rounds).values(
            project_id=pid, strategy="random", purpose="evaluation", budget=n_eval, status="closed",
            created_at=day).returning(rounds.c.round_id)).scalar_one()
        # inverse-probability weights as an active evaluation round stores them (mean about 1)
        conn.execute(insert(round_items), [
            {"round_id": rid, "rank": r, "item_id": i, "score": None, "status": "labeled", "labeled_at": day,
             "inclusion_prob": n_eval / n_items / w, "weight": w}
            for r, (i, w) in enumerate(zip(evaluation, rng.uniform(0.5, 1.5, n_eval)))])
        index = {i: k for k, i in enumerate(ids)}
        insert_annotations(conn, [
            {"project_id": pid, "item_id": i, "class_id": int(truth[index[i]]), "annotator": "oracle",
             "source": "oracle", "seconds": 1.0, "created_at": day} for i in evaluation])
        mid = conn.execute(insert(model_versions).values(
            project_id=pid, name="survey-v1", architecture="smallcnn", label_count=0,
            metrics={}, created_at=day + timedelta(days=1)).returning(model_versions.c.model_id)).scalar_one()
        preds = []
        for k, i in enumerate(ids):
            right = rng.random() < (0.9 if truth[k] == 0 else 0.75)
            # errors lean toward the first class: a biased model
            guess = int(truth[k]) if right else (0 if truth[k] != 0 and rng.random() < 0.7
                                                 else int(rng.integers(len(SURVEY_CLASSES))))
            confidence = float(np.clip(rng.beta(8, 2) if guess == truth[k] else rng.beta(4, 3), 0.34, 1.0))
            preds.append({"model_id": mid, "item_id": i, "class_id": guess, "confidence": confidence,
                          "margin": confidence / 2, "entropy": 1 - confidence, "bald": None,
                          "probs": np.full(len(SURVEY_CLASSES), 1 / 3, dtype=np.float16).tobytes()})
        conn.execute(insert(predictions), preds)
    return pid, mid


def _unit(pid, mid, estimand, is_ratio, shared, grp, unit, labeled, weight, y, yh, b=1.0, bh=1.0):
    return {"unit_key": f"{pid}-{mid}-{estimand}-{grp}-{unit}", "project_id": pid, "model_id": mid,
            "mart": "test", "estimand": estimand, "estimand_label": estimand.replace("_", " "),
            "is_ratio": is_ratio, "shared_units": shared, "grp": grp, "unit_id": unit,
            "is_labeled": int(labeled), "weight": float(weight) if labeled else 1.0,
            "y_num": float(y) if labeled else None, "yhat_num": float(yh),
            "y_den": float(b) if labeled else None, "yhat_den": float(bh)}


def synthetic_units(pid: int, mid: int, seed: int = 11) -> list[dict]:
    """Units of three test estimands (names start with ``test_``), unit ids from 10**7."""
    rng = np.random.default_rng(seed)
    out, unit = [], 10**7

    def group(estimand, grp, n, big_n, make, weights=True):
        nonlocal unit
        for k in range(n + big_n):
            labeled = k < n
            y, yh = make()
            w = rng.uniform(0.2, 3.0) if weights else 1.0
            out.append(_unit(pid, mid, estimand, 0, 0, grp, unit, labeled, w, y, yh))
            unit += 1

    def noisy(scale, shift, noise=0.6):
        def make():
            y = rng.normal(2.0, 1.0)
            return y, scale * (y - 2.0) + 2.0 + shift + rng.normal(0, noise)
        return make

    group("test_mean", "g1", 300, 3000, noisy(1.0, 0.3))
    group("test_mean", "g2", 250, 2500, noisy(0.8, 0.1), weights=False)
    group("test_mean", "g3_clip_high", 200, 2000, noisy(0.35, 0.0, 0.05), weights=False)  # lam > 1: clipped to 1
    group("test_mean", "g4_clip_low", 200, 2000, noisy(-1.0, 0.0))    # lam < 0: clipped to 0
    group("test_mean", "g5_one_label", 1, 500, noisy(1.0, 0.0))       # no classical or ppi row

    def binary(agree, p):
        def make():
            y = float(rng.random() < p)
            return y, y if rng.random() < agree else 1 - y
        return make

    group("test_prop", "p1", 400, 4000, binary(0.85, 0.3))
    group("test_prop", "p2", 350, 3000, binary(0.9, 0.6))

    # a ratio over shared units: each unit has a true and a predicted group, an outcome and
    # a share; a = outcome * share * [group], b = share * [group]
    n, big_n = 300, 3000
    for k in range(n + big_n):
        labeled = k < n
        true_g = int(rng.random() < 0.35)
        pred_g = true_g if rng.random() < 0.85 else 1 - true_g
        share = 1.0 / rng.integers(1, 6)
        outcome = float(rng.poisson(3.0 if true_g else 1.0))
        w = rng.uniform(0.2, 3.0)
        for g, name in ((1, "r_high"), (0, "r_low")):
            t, p = float(true_g == g), float(pred_g == g)
            out.append(_unit(pid, mid, "test_ratio", 1, 1, name, unit, labeled, w,
                             outcome * share * t, outcome * share * p, share * t, share * p))
        unit += 1
    return out
