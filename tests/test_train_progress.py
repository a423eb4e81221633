"""Training says what it does: the --min-steps rule, and epochs with loss and evaluation accuracy."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from alsql.cli import app
from alsql.config import set_settings
from alsql.models.fit import TrainConfig, plan_epochs


def test_plan_epochs_says_when_min_steps_raises_epochs():
    assert plan_epochs(TrainConfig(epochs=2, min_steps=200), 16) == (
        13, "--epochs 2 raised to 13 epochs to reach --min-steps 200 (16 steps per epoch)")
    assert plan_epochs(TrainConfig(epochs=30, min_steps=200), 16) == (30, None)
    epochs, note = plan_epochs(TrainConfig(epochs=2, min_steps=1000, max_epochs=300), 1)
    assert epochs == 300 and note.endswith("(1 step per epoch), capped at 300 epochs")


def test_train_help_states_the_min_steps_rule():
    out = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "--epochs is raised to reach it" in " ".join(out.split())


@pytest.mark.sqlite
def test_cli_train_prints_the_rule_and_epochs(sqlite_url, tmp_path, monkeypatch):
    from tests.test_train_infer import make_digits_project

    engine, _proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=40, train=30, evaluate=10)
    engine.dispose()
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    monkeypatch.delenv("CI", raising=False)
    set_settings(None)
    try:
        r = CliRunner().invoke(app, ["--db", sqlite_url, "train", "--project", "scans", "--epochs", "2",
                                     "--min-steps", "4", "--batch-size", "64", "--patience", "100", "--grayscale",
                                     "--image-size", "8", "--device", "cpu"])
        assert r.exit_code == 0, r.output
        assert "--epochs 2 raised to 4 epochs to reach --min-steps 4 (1 step per epoch)" in r.output
        lines = [x for x in r.output.splitlines() if x.startswith("epoch ")]
        assert lines and lines[-1].startswith("epoch 4/4: loss ") and "evaluation accuracy 0." in lines[-1]
        # In CI: the rule and the result, no per-epoch lines.
        monkeypatch.setenv("CI", "1")
        r = CliRunner().invoke(app, ["--db", sqlite_url, "train", "--project", "scans", "--epochs", "2",
                                     "--min-steps", "4", "--grayscale", "--image-size", "8", "--device", "cpu",
                                     "--no-resume"])
        assert r.exit_code == 0, r.output
        assert "raised to 4 epochs" in r.output and not any(x.startswith("epoch ") for x in r.output.splitlines())
    finally:
        set_settings(None)


def test_progress_bar_on_a_terminal(monkeypatch):
    import alsql.cli.train as train_cli

    buf = io.StringIO()
    monkeypatch.setattr(train_cli, "console", Console(file=buf, force_terminal=True, width=100))
    with train_cli.EpochReporter(bar=True, lines=False) as report:
        report({"epoch": 1, "epochs": 3, "train_loss": 1.5, "evaluated": False})
        report({"epoch": 3, "epochs": 3, "train_loss": 0.25, "evaluated": True, "eval_accuracy": 0.875})
    text = buf.getvalue()
    assert "3/3" in text and "loss 0.2500, evaluation accuracy 0.8750" in text
