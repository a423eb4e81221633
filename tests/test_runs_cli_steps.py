"""``alsql train``, ``infer`` and ``select`` are recorded runs (trigger ``cli``): status,
params, metrics, and the error of a failed one; ``alsql runs list`` shows them and a
recorded CLI step can be retried. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.schema import model_versions, rounds, runs
from tests.test_train_infer import make_digits_project


@pytest.fixture
def small(db_url, tmp_path, monkeypatch):
    from alsql.config import set_settings

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    monkeypatch.setenv("COLUMNS", "200")
    set_settings(None)
    engine, proj, _ = make_digits_project(db_url, tmp_path / "scans", n=40, train=20, evaluate=10)
    yield engine, proj
    engine.dispose()
    set_settings(None)
    set_database("sqlite:///alsql.db")


def _cli(db_url, *args, ok=True):
    r = CliRunner().invoke(app, ["--db", db_url, *args])
    if ok:
        assert r.exit_code == 0, r.output + repr(r.exception)
    return r


def test_train_infer_select_are_recorded_runs(small, db_url):
    engine, proj = small
    _cli(db_url, "train", "--project", "scans", "--epochs", "1", "--min-steps", "1", "--image-size", "8",
         "--device", "cpu", "--grayscale", "--batch-size", "16")
    _cli(db_url, "infer", "--project", "scans", "--device", "cpu", "--map", "none")
    _cli(db_url, "select", "--project", "scans", "--strategy", "margin", "--budget", "5")
    failed = _cli(db_url, "select", "--project", "scans", "--strategy", "nosuch", "--budget", "5", ok=False)
    assert failed.exit_code != 0

    with engine.connect() as conn:
        rows = conn.execute(select(runs).order_by(runs.c.run_id)).all()
        model_id = conn.execute(select(model_versions.c.model_id)).scalar_one()
        round_id = conn.execute(select(rounds.c.round_id).where(rounds.c.strategy == "margin")).scalar_one()
    assert [(r.step, r.status, r.trigger, r.project_id) for r in rows] == [
        ("train", "succeeded", "cli", proj.project_id), ("infer", "succeeded", "cli", proj.project_id),
        ("select", "succeeded", "cli", proj.project_id), ("select", "failed", "cli", proj.project_id)]
    train, infer, chosen, bad = rows
    assert train.params["epochs"] == 1 and train.params["image_size"] == 8 and train.params["grayscale"] is True
    assert train.metrics["model_id"] == model_id and train.metrics["label_count"] == 20
    assert 0.0 <= train.metrics["accuracy"] <= 1.0
    assert infer.metrics == {"model_id": model_id, "items": 40} and infer.params["map"] == "none"
    assert chosen.params["strategy"] == "margin" and chosen.metrics == {"round_id": round_id}
    assert "nosuch" in bad.error and bad.finished_at is not None
    assert all(r.finished_at is not None and r.error is None for r in rows[:3])

    listed = _cli(db_url, "runs", "list").output
    for r in rows:
        line = next(x for x in listed.splitlines() if x.split()[:1] == [str(r.run_id)])
        assert r.step in line and r.status in line and "cli" in line
    shown = _cli(db_url, "runs", "show", str(train.run_id)).output
    assert '"label_count": 20' in shown and '"epochs": 1' in shown
    # The recorded params are the step's own: a retry of the failed select runs it again.
    from alsql.errors import AlsqlError
    from alsql.pipelines.runs import list_runs
    from alsql.pipelines.steps import retry_run

    with pytest.raises(AlsqlError, match="nosuch"):
        retry_run(engine, bad.run_id, attempts=1)
    again = list_runs(engine, limit=1)[0]
    assert (again.step, again.status, again.retry_of, again.params["budget"]) == ("select", "failed", bad.run_id, 5)
