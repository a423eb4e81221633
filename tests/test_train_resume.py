"""A killed run's checkpoint is continued only when asked (--resume) or when every setting
matches, and the output says which."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from alsql.cli import app
from alsql.config import set_settings
from alsql.models.fit import TrainConfig
from alsql.models.resume import resume_plan, settings_of
from alsql.schema import model_versions

CFG = TrainConfig(epochs=4, min_steps=1, batch_size=16, patience=100, image_size=8, device="cpu")


def _settings(cfg: TrainConfig) -> dict:
    return settings_of(cfg, grayscale=True, weights=None, init="auto", head="auto")


def test_resume_plan_says_which():
    made = _settings(replace(CFG, epochs=40))
    state = {"epoch": 21, "epochs": 40, "settings": made}
    assert resume_plan(state, made, None) == (True, "resuming from epoch 22/40: settings match the interrupted run")
    now = _settings(replace(CFG, epochs=30))
    assert resume_plan(state, now, None) == (False, "starting fresh: the checkpoint was made with --epochs 40, now 30")
    assert resume_plan(state, now, True) == (True, "resuming from epoch 22/40: --resume (made with --epochs 40, now 30)")
    assert resume_plan(state, made, True) == (True, "resuming from epoch 22/40: --resume")
    assert resume_plan(state, made, False)[0] is False
    assert resume_plan(None, made, None) == (False, None)
    assert resume_plan(None, made, True)[1].startswith("--resume: no checkpoint")
    # Two settings differ: both named. A checkpoint of an older version records none: fresh unless asked.
    other = _settings(replace(CFG, epochs=40, lr=0.01, class_weight="none"))
    go, why = resume_plan(state, other, None)
    assert not go and "--class-weight logit_adjust, now none" in why and "--lr 0.002, now 0.01" in why
    old = {"epoch": 3, "epochs": 10}
    assert resume_plan(old, made, None)[0] is False and resume_plan(old, made, True)[0] is True
    # How the data is read is no setting of the model.
    assert resume_plan(state, _settings(replace(CFG, epochs=40, num_workers=4, cache_mb=1)), None)[0] is True


@pytest.fixture
def killed(sqlite_url, tmp_path, monkeypatch):
    """A digits project whose run of ``CFG`` was killed after its second epoch's checkpoint."""
    import alsql.models.train as tr
    from tests.test_train_infer import make_digits_project

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=80, train=40, evaluate=20)
    real, calls = tr.save_object, []

    def crash_after_two(uri, obj):
        real(uri, obj)
        calls.append(obj.get("epoch"))
        if len(calls) == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(tr, "save_object", crash_after_two)
    with pytest.raises(RuntimeError, match="killed"):
        tr.train_project(engine, proj.project_id, CFG, grayscale=True, artifacts=str(tmp_path / "art"))
    monkeypatch.setattr(tr, "save_object", real)
    assert calls == [0, 1]
    yield engine, proj, tmp_path
    engine.dispose()


def test_other_settings_start_fresh_and_say_why(killed):
    from alsql.models.train import train_and_record

    engine, proj, tmp = killed
    heard: list[str] = []
    out = train_and_record(engine, proj.project_id, replace(CFG, epochs=5), grayscale=True,
                           artifacts=str(tmp / "art"), say=heard.append)
    assert "starting fresh: the checkpoint was made with --epochs 4, now 5" in heard
    assert [h["epoch"] for h in out.fit.history] == [0, 1, 2, 3, 4]  # every epoch run
    with engine.connect() as conn:
        metrics = conn.execute(select(model_versions.c.metrics)).scalar_one()
    assert metrics["resumed"] is False


def test_matching_settings_resume_and_say_so(killed):
    from alsql.models.train import train_and_record

    engine, proj, tmp = killed
    heard: list[str] = []
    out = train_and_record(engine, proj.project_id, CFG, grayscale=True, artifacts=str(tmp / "art"),
                           say=heard.append)
    assert "resuming from epoch 2/4: settings match the interrupted run" in heard
    assert [h["epoch"] for h in out.fit.history] == [0, 1, 2, 3]  # 0-1 restored, 2-3 run


def test_cli_resume_continues_despite_other_settings(killed, monkeypatch):
    engine, _proj, tmp = killed
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp / "art"))
    monkeypatch.setenv("CI", "1")
    set_settings(None)
    try:
        args = ["--db", url, "train", "--project", "scans", "--epochs", "4", "--min-steps", "1", "--batch-size", "16",
                "--patience", "100", "--image-size", "8", "--device", "cpu", "--grayscale", "--lr", "0.001"]
        both = CliRunner().invoke(app, [*args, "--resume", "--no-resume"])
        assert both.exit_code != 0 and "--resume and --no-resume" in both.output + str(both.exception)
        r = CliRunner().invoke(app, [*args, "--resume"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "resuming from epoch 2/4: --resume (made with --lr 0.002, now 0.001)" in " ".join(r.output.split())
        with engine.connect() as conn:
            metrics = conn.execute(select(model_versions.c.metrics)).scalar_one()
        assert metrics["resumed"] is True and metrics["epochs"] == 4
    finally:
        set_settings(None)
