"""The pretrain step and watch rule, and encoders kept out of every "newest model" choice."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from alsql.db import make_engine
from alsql.errors import AlsqlError
from alsql.pipelines.watch import WatchRules, Watcher, labels_since_model, pool_since_encoder
from alsql.schema import model_versions, rounds, runs
from pipeline_helpers import QUICK_TRAIN, label, make_project
from conftest import need_module

PRETRAIN = {"epochs": 1, "max_steps": 2, "batch_size": 32, "image_size": 8, "device": "cpu"}


def _rules(tmp_path, **kw) -> WatchRules:
    base = dict(retrain_labels=10**6, queue_low=0, marts=False, lease_seconds=60, pretrain_items=200,
                pretrain_growth=1.5, pretrain=PRETRAIN | {"grayscale": True, "artifacts": str(tmp_path / "art")})
    return WatchRules(**(base | kw))


def _encoders(engine):
    with engine.connect() as conn:
        return conn.execute(select(model_versions.c.model_id, model_versions.c.params)
                            .where(model_versions.c.status == "encoder").order_by(model_versions.c.model_id)).all()


def _more_pngs(folder, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(folder / f"x{seed}-{i:04d}.png")


def test_pretrain_rules_are_checked():
    with pytest.raises(AlsqlError, match="pretrain_growth 1.0"):
        WatchRules.from_mapping({"pretrain_growth": 1.0})
    assert WatchRules.from_mapping({"pretrain_items": 0}).pretrain_items == 0


@pytest.mark.slow
def test_watch_pretrains_at_the_size_and_again_after_growth(sqlite_url, tmp_path):
    from alsql.loaders.ingest import ingest

    engine = make_engine(sqlite_url)
    proj, _ = make_project(engine, tmp_path / "png", 150)
    said: list[str] = []
    watcher = Watcher(engine, _rules(tmp_path), say=said.append, explain=True)
    assert watcher.tick() == [] and not _encoders(engine)
    assert f"[{proj.name}] not due: pretrain: pool 150 of 200 items (first pretraining)" in said

    _more_pngs(tmp_path / "more", 60, seed=1)  # 210 items: past the size
    ingest(engine, str(tmp_path / "more"))
    said.clear()
    made = watcher.tick()
    assert [r.step for r in made] == ["pretrain"]
    assert any("pretrain: the pool holds 210 items, no encoder yet (rule: pretrain at >= 200)" in s for s in said)
    (enc, params), = _encoders(engine)
    assert params["pool_items"] == 210 and made[0].metrics["model_id"] == enc
    with engine.connect() as conn:
        assert pool_since_encoder(conn, proj.project_id) == (210, 210, enc)

    said.clear()
    assert watcher.tick() == []
    assert f"[{proj.name}] not due: pretrain: pool 210 items, encoder {enc} saw 210; again at 315 (1.5x)" in said

    _more_pngs(tmp_path / "grow", 105, seed=2)  # 315 items: 1.5x the 210 the encoder saw
    ingest(engine, str(tmp_path / "grow"))
    said.clear()
    made = watcher.tick()
    assert [r.step for r in made] == ["pretrain"]
    assert any("the pool grew to 315 items, 1.5x the 210 encoder" in s for s in said)
    assert [p["pool_items"] for _, p in _encoders(engine)] == [210, 315]
    with engine.connect() as conn:
        steps = conn.execute(select(runs.c.step, runs.c.status).order_by(runs.c.run_id)).all()
    assert steps == [("pretrain", "succeeded"), ("pretrain", "succeeded")]
    engine.dispose()


@pytest.mark.slow
def test_an_encoder_is_never_taken_for_the_newest_model(sqlite_url, tmp_path):
    """After `alsql pretrain`, selection, inference, the watcher, Dagster and the web app use the classifier."""
    from alsql.models.infer import infer_project
    from alsql.models.pool import latest_model_id, require_model
    from alsql.models.select import create_round
    from alsql.models.fit import TrainConfig
    from alsql.models.train import train_project
    from alsql.pipelines.steps import run_step
    from alsql.web import data as web_data

    engine = make_engine(sqlite_url)
    proj, oracle = make_project(engine, tmp_path / "png", 120)
    label(engine, proj.project_id, oracle, sorted(oracle)[:30])
    art = str(tmp_path / "art")
    mid = train_project(engine, proj.project_id, TrainConfig(**QUICK_TRAIN, device="cpu"), grayscale=True,
                        artifacts=art, init="random")
    infer_project(engine, proj.project_id, mid, batch_size=64, map_method=None)
    run = run_step(engine, "pretrain", proj.project_id, PRETRAIN | {"grayscale": True, "artifacts": art})
    enc = run.metrics["model_id"]
    assert enc > mid and run.metrics["steps"] == 2
    with engine.connect() as conn:
        assert latest_model_id(conn, proj.project_id) == mid
        assert require_model(conn, proj.project_id, None) == mid
        assert web_data.latest_model_id(conn, proj.project_id) == mid
        assert labels_since_model(conn, proj.project_id) == (0, mid)  # no retrain because an encoder appeared
        assert [m["model_id"] for m in web_data.progress(conn, proj)["models"]] == [mid]  # the progress page
    rid = create_round(engine, proj.project_id, "margin", 5, seed=0)
    with engine.connect() as conn:
        assert conn.execute(select(rounds.c.model_id).where(rounds.c.round_id == rid)).scalar() == mid
    assert infer_project(engine, proj.project_id, map_method=None).model_id == mid
    assets = need_module("alsql.orchestration.assets")  # the dagster extra (required in CI)
    assert assets._newest_model(engine, proj.project_id) == mid
    engine.dispose()
