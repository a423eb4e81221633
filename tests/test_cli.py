"""The `alsql` command end to end on a SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database

runner = CliRunner()


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def run(*args, ok=True):
        result = runner.invoke(app, ["--db", url, *args])
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    yield run
    set_database("sqlite:///alsql.db")


def test_project_ingest_labels_status(cli, tmp_path):
    assert "created" in cli("init").output
    assert "already up to date" in cli("init").output
    from alsql.migrations import heads

    assert heads()[0] in cli("db", "current").output
    cli("project", "create", "birds", "--classes", "owl,hawk,wren", "--description", "garden birds")
    assert "birds" in cli("project", "list").output
    shown = cli("project", "show", "birds").output
    assert "owl" in shown and "wren" in shown
    bad = cli("project", "create", "birds", "--classes", "a", ok=False)
    assert bad.exit_code != 0 and "already exists" in str(bad.exception)

    for i in range(3):
        Image.new("L", (4, 4), i * 40).save(tmp_path / f"img{i}.png")
    out = cli("ingest", str(tmp_path)).output
    assert "3 new, 0 already present, 0 corrupt" in out
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimg0.png,owl\nimg1.png,wren\n")
    assert "would write 2" in cli("labels", "import", str(labels), "--project", "birds", "--dry-run").output
    cli("labels", "import", str(labels), "--project", "birds", "--root", str(tmp_path))
    exported = cli("labels", "export", "--project", "birds", "--format", "jsonl").output
    assert [json.loads(x)["label"] for x in exported.splitlines()] == ["owl", "wren"]
    status = json.loads(cli("status", "--json").output)
    assert status["items"] == {"ok": 3, "corrupt": 0, "missing": 0}
    assert status["projects"][0]["labels_per_class"] == {"owl": 1, "hawk": 0, "wren": 1}


def test_db_sql_prints_tsql(cli):
    out = cli("db", "sql", "--dialect", "mssql").output
    assert "PRIMARY KEY CLUSTERED" in out and "CREATE VIEW training_set" in out


def test_console_script_reports_errors_cleanly(tmp_path):
    """Bad input: a clear message and exit code 2, not a traceback."""
    from alsql.migrations import upgrade

    upgrade(f"sqlite:///{tmp_path}/x.db")
    proc = subprocess.run(
        [sys.executable, "-c", "from alsql.cli import main; main()", "--db", f"sqlite:///{tmp_path}/x.db",
         "labels", "import", str(tmp_path / "missing.csv"), "--project", "p"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "error: labels file" in proc.stderr and "missing.csv' does not exist" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
