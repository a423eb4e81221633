"""What the CLI prints: help keeps bracketed words, tables read at 80 columns, alerts, watch distances."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from sqlalchemy import insert
from typer.testing import CliRunner

from alsql.annotate import insert_annotations
from alsql.cli import app
from alsql.cli.common import set_database
from alsql.db import write_transaction
from alsql.models.select import create_round
from alsql.pipelines.runs import recorded_run
from alsql.pipelines.validate import CheckResult, ValidationReport
from alsql.schema import alerts, model_versions
from tests.conftest import add_items

runner = CliRunner()


@pytest.fixture(autouse=True)
def _reset_database():
    yield
    set_database("sqlite:///alsql.db")


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def _narrow(monkeypatch, module) -> io.StringIO:
    buf = io.StringIO()
    monkeypatch.setattr(module, "console", Console(file=buf, width=80, highlight=False))
    return buf


def _fits_80(text: str) -> None:
    assert text.strip()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text, text  # nothing cut off


@pytest.mark.parametrize(("argv", "words"), [
    (["labels", "import", "--help"], ["[annotator]", "[created_at]"]),
    (["watch", "--help"], ["[watch]"]),
])
def test_help_keeps_bracketed_words(argv, words):
    out = runner.invoke(app, argv, env={"COLUMNS": "200"}).output
    for word in words:
        assert word in out, out


def test_validate_report_reads_at_80_columns(monkeypatch):
    import alsql.cli.validate as validate_cli

    buf = _narrow(monkeypatch, validate_cli)
    report = ValidationReport([
        CheckResult("items", "expect_column_values_to_be_unique", "sha256", True, 0, 12_345),
        CheckResult("annotations", "expect_column_values_to_not_be_null", "class_name", False, 3, 1_200,
                    [{"item_id": 7, "project_id": 1}]),
        CheckResult("predictions", "expect_column_pair_values_to_be_equal", "probs_bytes = expected_probs_bytes",
                    False, 1, 40_000),
    ])
    validate_cli.print_report(report)
    text = buf.getvalue()
    _fits_80(text)
    flat = _flat(text)
    for word in ("annotations", "predictions", "not null", "unique", "class_name", "3 of 1,200", "12,345",
                 "FAIL", "pass"):
        assert word in flat, text
    assert "expected_probs_bytes" in text.replace("\n", "").replace(" ", "")


def test_runs_list_reads_at_80_columns(engine, project, db_url, monkeypatch):
    import alsql.cli.runs as runs_cli

    for i in range(3):
        with recorded_run(engine, "select", project_id=project.project_id, params={"budget": 50},
                          trigger=f"the queue holds {i} pending items (rule: < 10), a long explanation of why"):
            pass
    with pytest.raises(RuntimeError):
        with recorded_run(engine, "marts", project_id=project.project_id, trigger="after infer run 12"):
            raise RuntimeError("dbt exploded")
    buf = _narrow(monkeypatch, runs_cli)
    r = runner.invoke(app, ["--db", db_url, "runs", "list"])
    assert r.exit_code == 0, r.output
    text = buf.getvalue()
    _fits_80(text)
    flat = _flat(text)
    for word in ("run", "step", "status", "started", "took", "trigger", "succeeded", "failed", "marts"):
        assert word in flat, text
    assert "a long explanation of why" in flat  # the trigger folds, it is not cut


def _alert(engine, project_id, model_id, value, message):
    with write_transaction(engine) as conn:
        conn.execute(insert(alerts).values(project_id=project_id, model_id=model_id, kind="drift", value=value,
                                           message=message))


def test_alerts_lists_drift_alerts(engine, project, db_url, monkeypatch):
    import alsql.cli.alerts as alerts_cli

    r = runner.invoke(app, ["--db", db_url, "alerts"])
    assert r.exit_code == 0 and "no alerts" in r.output
    with write_transaction(engine) as conn:
        mid = conn.execute(insert(model_versions).values(project_id=project.project_id, architecture="cnn", params={})
                           .returning(model_versions.c.model_id)).scalar_one()
    _alert(engine, project.project_id, mid, 0.41234567,
           f"predicted class distribution of model {mid} drifted from labels: PSI 0.412 > 0.2")
    _alert(engine, project.project_id, mid, 1.5, f"predicted class distribution of model {mid} drifted from model 1")
    buf = _narrow(monkeypatch, alerts_cli)
    r = runner.invoke(app, ["--db", db_url, "alerts", "--project", "digits"])
    assert r.exit_code == 0, r.output
    text = buf.getvalue()
    _fits_80(text)
    flat = _flat(text)
    assert "0.412" in flat and "0.41234567" not in flat and "1.500" in flat
    assert flat.index("1.500") < flat.index("0.412")  # newest first
    assert "digits" in flat and "drift" in flat and "drifted from labels" in flat
    r = runner.invoke(app, ["--db", db_url, "alerts", "--json", "--limit", "1"])
    got = json.loads(r.output)
    assert len(got) == 1 and got[0]["value"] == 1.5 and got[0]["project"] == "digits" and got[0]["model_id"] == mid
    assert got[0]["created_at"][:2] == "20"


def test_watch_once_says_how_far_each_rule_is(engine, project, db_url):
    pid = project.project_id
    ids = add_items(engine, 80)
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": pid, "item_id": i, "class_id": 0} for i in ids[:49]])
    create_round(engine, pid, "random", 12, seed=1)
    r = runner.invoke(app, ["--db", db_url, "watch", "--once"])
    assert r.exit_code == 0, r.output
    out = r.output
    assert "[digits] not due: train: 49 of 50 labels so far (no model yet)" in out
    assert "[digits] not due: select: queue 12 pending, a new round of 50 when below 10" in out
    assert "[digits] not due: infer: waits for a first model" in out
    assert "alert above PSI 0.200" in out
