"""Recorded runs: status, metrics, errors, heartbeat, retries after a lost connection."""

from __future__ import annotations

import os
import socket
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from alsql.errors import AlsqlError
from alsql.pipelines import steps
from alsql.pipelines.leases import as_utc
from alsql.pipelines.retry import backoff_delays, call_with_retry, is_disconnect
from alsql.pipelines.runs import get_run, list_runs, mark_stale_failed, queue_run, recorded_run
from alsql.schema import runs


def _lost() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def test_success_records_metrics_and_worker(engine, project):
    with recorded_run(engine, "select", project_id=project.project_id, trigger="test", params={"k": 3}) as run:
        with engine.connect() as conn:
            assert conn.execute(select(runs.c.status).where(runs.c.run_id == run.run_id)).scalar() == "running"
        run.metrics["round_id"] = 7
    row = get_run(engine, run.run_id)
    assert row.status == "succeeded" and row.metrics == {"round_id": 7} and row.params == {"k": 3}
    assert row.worker == f"{socket.gethostname()}:{os.getpid()}" and row.trigger == "test"
    assert row.finished_at is not None and row.error is None


def test_failure_records_the_error(engine, project):
    with pytest.raises(RuntimeError, match="boom"):
        with recorded_run(engine, "train", project_id=project.project_id):
            raise RuntimeError("boom: the GPU caught fire")
    row = list_runs(engine, limit=1)[0]
    assert row.status == "failed" and "RuntimeError: boom: the GPU caught fire" in row.error


def test_heartbeat_moves_while_running(engine, project):
    with recorded_run(engine, "infer", heartbeat_seconds=0.1) as run:
        time.sleep(0.6)
        row = get_run(engine, run.run_id)
        assert as_utc(row.heartbeat_at) > as_utc(row.started_at)


def test_stale_running_runs_are_marked_failed(engine, project):
    rid = queue_run(engine, "train", project_id=project.project_id)
    with recorded_run(engine, "train", run_id=rid, heartbeat_seconds=60):
        assert mark_stale_failed(engine, stale_seconds=3600) == []
    assert get_run(engine, rid).status == "succeeded"


def test_retry_backoff_then_give_up():
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _lost()
        return "ok"

    assert call_with_retry(flaky, attempts=5, base=0.5, sleep=slept.append) == "ok"
    assert len(calls) == 3 and slept == [0.5, 1.0]
    assert backoff_delays(5, 0.5, 1.5) == [0.5, 1.0, 1.5, 1.5]
    slept.clear()
    with pytest.raises(OperationalError):
        call_with_retry(lambda: (_ for _ in ()).throw(_lost()), attempts=3, base=0.1, sleep=slept.append)
    assert slept == [0.1, 0.2]
    calls.clear()

    def bad_input():
        calls.append(1)
        raise AlsqlError("--budget -1: expected a positive integer")

    with pytest.raises(AlsqlError):
        call_with_retry(bad_input, attempts=5, sleep=slept.append)
    assert len(calls) == 1  # not a connection problem: no retry
    assert is_disconnect(_lost()) and not is_disconnect(ValueError("x"))


def test_step_that_keeps_losing_its_connection_is_marked_failed_and_retried(engine, project, monkeypatch):
    tries = []

    def lossy(engine_, project_id, params, run):
        tries.append(run.run_id)
        raise _lost()

    monkeypatch.setitem(steps.STEPS, "drift", lossy)
    with pytest.raises(OperationalError):
        steps.run_step(engine, "drift", project.project_id, {"threshold": 0.3}, attempts=3, backoff=0.01)
    failed = list_runs(engine, limit=1)[0]
    assert len(tries) == 3 and failed.status == "failed" and "server closed the connection" in failed.error
    monkeypatch.setitem(steps.STEPS, "drift", lambda *a: {"psi": 0.0})
    again = steps.retry_run(engine, failed.run_id)
    row = get_run(engine, again.run_id)
    assert row.retry_of == failed.run_id and row.status == "succeeded" and row.params == {"threshold": 0.3}
    with pytest.raises(AlsqlError, match="only failed runs"):
        steps.retry_run(engine, again.run_id)


@pytest.mark.postgres
def test_real_lost_connection_is_retried(pg_url):
    """The server ends the step's session mid-way (pg_terminate_backend); the retry finishes."""
    from alsql.db import make_engine

    engine, admin = make_engine(pg_url), make_engine(pg_url)
    seen = []

    def step(engine_, project_id, params, run):
        with engine_.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            if not seen:
                seen.append(pid)
                with admin.connect() as a:
                    a.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                    a.commit()
            conn.execute(text("SELECT 1")).scalar()
        return {"attempts": len(seen) + 1}

    try:
        steps.STEPS["_lost_test"] = step
        run = steps.run_step(engine, "_lost_test", None, {}, attempts=3, backoff=0.05)
        assert get_run(engine, run.run_id).status == "succeeded" and run.metrics == {"attempts": 2}
    finally:
        steps.STEPS.pop("_lost_test", None)
        engine.dispose()
        admin.dispose()


def test_runs_cli(engine, project, db_url):
    from typer.testing import CliRunner

    from alsql.cli import app

    with pytest.raises(RuntimeError):
        with recorded_run(engine, "marts", project_id=project.project_id, params={"select": ["x"]}):
            raise RuntimeError("dbt exploded")
    r = CliRunner().invoke(app, ["--db", db_url, "runs", "list"])
    assert r.exit_code == 0 and "marts" in r.output and "failed" in r.output
    rid = list_runs(engine, limit=1)[0].run_id
    r = CliRunner().invoke(app, ["--db", db_url, "runs", "show", str(rid)])
    assert r.exit_code == 0 and "dbt exploded" in r.output
