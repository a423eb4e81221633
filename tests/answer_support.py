"""A database for ``alsql answer`` and the progress page's answer, on SQLite and PostgreSQL.

``marts_data.populate`` (traffic, products, machines: predictions and evaluation labels,
joined to the packaged demo records through var ``demo_projects``) plus three small
projects that answer nothing:

- ``sparse``: machine clips like ``machines`` (so maintenance_risk joins them) whose
  evaluation round labeled a single abnormal clip and eight normal ones;
- ``unlabeled``: a model with predictions and no evaluation round;
- ``unpredicted``: a model version that predicted nothing.

The ``answered`` fixture builds the answer marts once through ``alsql answer`` itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, insert

from alsql.annotate import insert_annotations
from alsql.catalog import create_project
from alsql.cli import main
from alsql.cli.common import set_database
from alsql.db import make_engine, write_transaction
from alsql.migrations import upgrade
from alsql.schema import items, model_versions, predictions, round_items, rounds
from marts_data import MACHINE_CLASSES, T0, machine_image, populate
from tests.conftest import _fresh_pg_database

__all__ = ["DEMO_VARS", "Answered", "answered", "run_main", "add_small_projects"]

DEMO_VARS = "{demo_projects: [traffic, products, machines, sparse]}"


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """The console script in-process: ``(exit code, stdout, stderr)``."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def _project(engine: Engine, name: str, classes: list[str], rows: list[dict], *, evaluated: list[int],
             predicted: bool, seed: int) -> int:
    """A project with ``rows`` (dicts with truth, entity, captured_at), a model (with a
    prediction per item when ``predicted``, right 85% of the time) and an evaluation round
    labeling the items at positions ``evaluated`` with their truth."""
    rng = np.random.default_rng(seed)
    day = T0 + timedelta(days=200)
    with write_transaction(engine) as conn:
        pid = create_project(conn, name, classes, f"{name} (answer test data)").project_id
        uris = [f"file:///answer/{name}/{i:03d}.png" for i in range(len(rows))]
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True), [
            {"uri": u, "sha256": hashlib.sha256(u.encode()).hexdigest(), "media_type": "image/png", "width": 8,
             "height": 8, "entity": r["entity"], "captured_at": r["captured_at"], "attributes": {"site": "a"}}
            for u, r in zip(uris, rows)]).scalars())
        mid = conn.execute(insert(model_versions).values(
            project_id=pid, name=f"{name}-v1", architecture="smallcnn", label_count=0,
            created_at=day).returning(model_versions.c.model_id)).scalar_one()
        if predicted:
            preds = []
            for i, r in zip(ids, rows):
                truth = classes.index(r["truth"])
                guess = truth if rng.random() < 0.85 else (truth + 1) % len(classes)
                p = np.full(len(classes), 0.1 / (len(classes) - 1), dtype=np.float16)
                p[guess] = 0.9
                preds.append({"model_id": mid, "item_id": i, "class_id": guess, "confidence": 0.9, "margin": 0.8,
                              "entropy": 0.3, "bald": None, "probs": p.tobytes()})
            conn.execute(insert(predictions), preds)
        if evaluated:
            rid = conn.execute(insert(rounds).values(
                project_id=pid, strategy="random", purpose="evaluation", budget=len(evaluated), status="closed",
                created_at=day).returning(rounds.c.round_id)).scalar_one()
            conn.execute(insert(round_items), [
                {"round_id": rid, "rank": k, "item_id": ids[j], "score": None, "status": "labeled", "labeled_at": day}
                for k, j in enumerate(evaluated)])
            insert_annotations(conn, [
                {"project_id": pid, "item_id": ids[j], "class_id": classes.index(rows[j]["truth"]),
                 "annotator": "oracle", "source": "oracle", "created_at": day + timedelta(minutes=k)}
                for k, j in enumerate(evaluated)])
    return pid


def add_small_projects(engine: Engine) -> dict[str, int]:
    """The three projects of the module docstring; name -> project id."""
    clips = []
    for m in range(1, 9):
        for k in range(6):
            at, truth = machine_image(m, k)
            clips.append({"entity": f"machine-{m:02d}", "captured_at": at, "truth": truth})
    abnormal = [j for j, r in enumerate(clips) if r["truth"] == "anomaly"]
    normal = [j for j, r in enumerate(clips) if r["truth"] == "normal"]
    plain = [{"entity": None, "captured_at": T0, "truth": "a" if j % 3 else "b"} for j in range(10)]
    return {
        "sparse": _project(engine, "sparse", MACHINE_CLASSES, clips, evaluated=abnormal[:1] + normal[:8],
                           predicted=True, seed=1),
        "unlabeled": _project(engine, "unlabeled", ["a", "b"], plain, evaluated=[], predicted=True, seed=2),
        "unpredicted": _project(engine, "unpredicted", ["a", "b"], plain[:4], evaluated=[], predicted=False, seed=3),
    }


@dataclass
class Answered:
    """The database after the first ``alsql answer``: its URL, an engine, the dbt work dir
    and the first answer's JSON document (project machines) and stderr."""

    url: str
    engine: Engine
    work_dir: Path
    projects: dict[str, int]
    first: dict
    first_err: str


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def answered(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"answer-{request.param}")
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'alsql.db'}"
    else:
        url, drop = _fresh_pg_database(request.getfixturevalue("pg_admin_url"))
    upgrade(url)
    engine = make_engine(url)
    populated = populate(engine)
    ids = dict(populated.projects) | add_small_projects(engine)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(["--db", url, "answer", "--project", "machines", "--json", "--vars", DEMO_VARS,
              "--work-dir", str(root / "dbt")])
    assert exit_info.value.code in (0, None), err.getvalue()
    try:
        yield Answered(url, engine, root / "dbt", ids, json.loads(out.getvalue()), err.getvalue())
    finally:
        engine.dispose()
        set_database("sqlite:///alsql.db")
        if drop is not None:
            drop()
