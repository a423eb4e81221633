"""The watcher: labels in, model, predictions and a new round out, with no other command."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from alsql.db import make_engine
from alsql.pipelines.watch import WatchRules, Watcher, labels_since_model, queue_size
from alsql.schema import items, model_versions, round_items, rounds, runs
from pipeline_helpers import QUICK_TRAIN, label, make_project, prediction_counts


def _rules(tmp_path, **kw) -> WatchRules:
    base = dict(interval=0.3, retrain_labels=50, queue_low=10, round_budget=50, marts=False, lease_seconds=60,
                train=QUICK_TRAIN | {"grayscale": True, "artifacts": str(tmp_path / "art")}, infer={"batch_size": 64})
    return WatchRules(**(base | kw))


def _wait(cond, timeout=240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def _models(engine):
    with engine.connect() as conn:
        return list(conn.execute(select(model_versions.c.model_id).order_by(model_versions.c.model_id)).scalars())


def _rounds(engine):
    with engine.connect() as conn:
        return conn.execute(select(rounds.c.round_id, rounds.c.model_id).order_by(rounds.c.round_id)).all()


def _n_items(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items).where(items.c.status == "ok")).scalar_one()


def test_rules_are_read_and_bad_keys_refused():
    from alsql.errors import AlsqlError

    assert WatchRules.from_mapping({"retrain_labels": 7}).retrain_labels == 7
    assert WatchRules.from_mapping(None).retrain_labels == 50
    with pytest.raises(AlsqlError, match="retrain_lables.*unknown rule"):
        WatchRules.from_mapping({"retrain_lables": 7})


@pytest.mark.slow
def test_importing_50_labels_leads_to_model_predictions_and_round(db_url, tmp_path):
    engine = make_engine(db_url)
    proj, oracle = make_project(engine, tmp_path / "png", 150)
    label(engine, proj.project_id, oracle, sorted(oracle)[:60])
    said: list[str] = []
    stop = threading.Event()
    watcher = Watcher(engine, _rules(tmp_path), say=said.append)
    thread = threading.Thread(target=watcher.run_forever, kwargs={"stop": stop.is_set}, daemon=True)
    thread.start()
    try:
        n = _n_items(engine)
        # First the 60 starting labels: model 1, its predictions, round 1.
        assert _wait(lambda: len(_rounds(engine)) == 1 and _models(engine) == [_models(engine)[0]]
                     and prediction_counts(engine, _models(engine)[0]) == (n, n)), said
        (r1, _), m1 = _rounds(engine)[0], _models(engine)[0]
        with engine.connect() as conn:
            queued = list(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == r1)).scalars())
        assert len(queued) == 50
        # Import 50 labels (the round's items); nothing else is run by hand.
        label(engine, proj.project_id, oracle, queued)
        assert _wait(lambda: len(_rounds(engine)) == 2), said
        m2 = _models(engine)[-1]
        assert m2 > m1
        assert prediction_counts(engine, m2) == (n, n)
        assert _rounds(engine)[-1].model_id == m2
        with engine.connect() as conn:
            assert labels_since_model(conn, proj.project_id)[0] == 0
            assert queue_size(conn, proj.project_id) == min(50, n - 110)  # the rest of the pool

        def steps_done():  # the round is visible before its step's run row is closed: wait for that
            with engine.connect() as conn:
                rows = conn.execute(select(runs.c.step, runs.c.status)).all()
            return rows if len(rows) == 8 and all(s not in ("queued", "running") for _, s in rows) else None

        assert _wait(lambda: steps_done() is not None, timeout=60)
        steps = steps_done()
    finally:
        stop.set()
        thread.join(timeout=120)
        engine.dispose()
    assert all(s == "succeeded" for _, s in steps), steps
    assert sorted(s for s, _ in steps) == sorted(["train", "infer", "drift", "select"] * 2)
    assert any("50 labels arrived since model" in m for m in said)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_watchers_never_run_the_same_step_twice(pg_url, tmp_path):
    engine = make_engine(pg_url)
    proj, oracle = make_project(engine, tmp_path / "png", 120)
    label(engine, proj.project_id, oracle, sorted(oracle)[:60])
    toml = tmp_path / "alsql.toml"
    train = ", ".join(f"{k} = {v}" for k, v in QUICK_TRAIN.items())
    toml.write_text(
        "[watch]\nretrain_labels = 50\nqueue_low = 10\nround_budget = 40\nmarts = false\n"
        f"train = {{ {train}, grayscale = true, artifacts = \"{tmp_path / 'art'}\" }}\n"
    )
    env = os.environ | {"ALSQL_DATABASE_URL": pg_url}
    cmd = [sys.executable, "-c", "from alsql.cli import main; main()", "watch", "--once"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with engine.connect() as conn:
        steps = conn.execute(select(runs.c.step, func.count()).group_by(runs.c.step)).all()
    engine.dispose()
    assert dict(steps) == {"train": 1, "infer": 1, "drift": 1, "select": 1}, outs
    assert "another watcher holds it" in "".join(outs) or "no longer due" in "".join(outs)
