"""Video training that fits an expert's day: the labeled segments are decoded once per run
(not once per epoch), the plan and its duration are printed before training goes far, and
``--max-minutes`` stops after the epoch that passes the limit, keeps the best checkpoint so
far and records ``stopped: max-minutes``. SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from alsql.catalog import create_project
from alsql.db import make_engine, write_transaction
from alsql.loaders.ingest import ingest
from alsql.models.fit import TrainConfig
from alsql.schema import items, model_versions
from tests.media_support import make_video

# 2 steps per epoch (8 training segments, batches of 4), evaluated every epoch
CFG = TrainConfig(epochs=4, min_steps=0, batch_size=4, patience=100, evaluations=4, device="cpu")


@pytest.fixture
def cams(engine, tmp_path):
    """Six 4-s videos of 32 px (a bright square left or right): 12 two-second segments, 4 of them
    labeled through an evaluation round, 8 for training."""
    from alsql.models.select import create_round
    from alsql.pipelines.loop import answer_round

    folder = tmp_path / "cams"
    for i in range(3):
        make_video(folder / f"left-{i}.mp4", seconds=4, fps=8, size=32, pattern="left", seed=i)
        make_video(folder / f"right-{i}.mp4", seconds=4, fps=8, size=32, pattern="right", seed=i)
    assert ingest(engine, str(folder)).new == 12
    with write_transaction(engine) as conn:
        proj = create_project(conn, "cams", ["left", "right"])
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri).where(items.c.status == "ok")).all()
    oracle = {r.item_id: 0 if "/left-" in r.uri else 1 for r in rows}
    answer_round(engine, proj, create_round(engine, proj.project_id, "random", 4, purpose="evaluation", seed=1), oracle)
    answer_round(engine, proj, create_round(engine, proj.project_id, "random", 8, seed=2), oracle)
    return proj


@pytest.fixture
def decodes(monkeypatch):
    """Every segment decode, counted by uri (the reader's decoder, wrapped)."""
    from alsql.loaders import media_rows

    seen: Counter = Counter()
    real = media_rows.decode_item

    def counting(uri, spec):
        seen[uri] += 1
        return real(uri, spec)

    monkeypatch.setattr(media_rows, "decode_item", counting)
    return seen


def _labeled(engine, proj) -> set[str]:
    from alsql.schema import annotations

    with engine.connect() as conn:
        return set(conn.execute(select(items.c.uri).join(annotations, annotations.c.item_id == items.c.item_id)
                                .where(annotations.c.project_id == proj.project_id)).scalars())


def test_each_labeled_segment_is_decoded_once_per_run(engine, cams, decodes, tmp_path):
    from alsql.models.train import train_and_record

    out = train_and_record(engine, cams.project_id, CFG, artifacts=str(tmp_path / "art"))
    assert out.fit.epochs_run == 4
    labeled = _labeled(engine, cams)
    assert len(labeled) == 12 and set(decodes) == labeled
    assert set(decodes.values()) == {1}  # 4 epochs, 4 evaluations: one decode each

    decodes.clear()  # the baseline: nothing held in memory, every epoch decodes again
    from dataclasses import replace

    train_and_record(engine, cams.project_id, replace(CFG, cache_mb=0), artifacts=str(tmp_path / "art"))
    assert set(decodes) == labeled and set(decodes.values()) == {4}


def test_the_cache_gives_the_batches_the_stream_gives(engine, cams):
    """Held as uint8, the cached segments are exactly the floats the reader decodes."""
    from dataclasses import replace

    import torch

    from alsql.models.inputs import media_plan
    from alsql.models.train import _loader, _Source, dataset_url

    plan = media_plan(engine, cams.project_id, CFG, False)
    cfg = replace(plan.cfg, batch_size=16)

    def first_batch(cache_mb):
        c = replace(cfg, cache_mb=cache_mb)
        src = _Source(*_loader(dataset_url(engine), cams.project_id, "evaluation_set", c, plan.image_size, False,
                               False, torch.device("cpu")), 4, plan.pixels, c, shuffle=False, kind="video")
        assert src.cache == (cache_mb > 0)
        (x, y), = list(src.batches(0))
        if src.cache:
            assert src.x.dtype == torch.uint8 and src.x.shape == x.shape
        return x, y

    (xc, yc), (xs, ys) = first_batch(64), first_batch(0)
    assert xc.dtype == xs.dtype == torch.float32 and xc.shape == (4, 8, 3, 32, 32)
    assert torch.equal(yc, ys) and torch.equal(xc, xs)


def test_max_minutes_stops_keeps_the_best_and_records_it(engine, cams, tmp_path):
    from dataclasses import replace

    from alsql.models.train import train_and_record

    said: list[str] = []
    cfg = replace(CFG, epochs=6, max_minutes=1e-6)  # past the limit after the first epoch
    out = train_and_record(engine, cams.project_id, cfg, artifacts=str(tmp_path / "art"), say=said.append)
    assert out.fit.stopped == "max-minutes" and out.fit.epochs_run == 1
    assert out.fit.best_epoch == 0 and out.fit.confusion is not None  # evaluated before stopping
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == out.model_id)).one()
    assert row.metrics["stopped"] == "max-minutes" and row.params["stopped"] == "max-minutes"
    assert row.params["max_minutes"] == 1e-6 and row.metrics["epochs"] == 1
    text = "\n".join(said)
    assert "stopped at --max-minutes 1e-06 after epoch 1 of 6; kept the best checkpoint so far (epoch 1)" in text
    assert "planned 12 steps (6 epochs x 2 steps), about" in text and "stopping at --max-minutes 1e-06" in text

    said.clear()  # without the limit the plan runs out and nothing says stopped
    out = train_and_record(engine, cams.project_id, replace(CFG, epochs=3), artifacts=str(tmp_path / "art"),
                           say=said.append)
    assert out.fit.stopped is None and out.fit.epochs_run == 3
    assert any(line.startswith("planned 6 steps (3 epochs x 2 steps), about ") for line in said)
    assert not any("stopped" in line or "stopping" in line for line in said)


def test_train_command_prints_the_plan_and_refuses_a_bad_limit(db_url, cams, capsys):
    from alsql.cli import main
    from alsql.cli.common import set_database

    def run(*argv):
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        out = capsys.readouterr()
        return info.value.code, " ".join((out.out + out.err).split())

    set_database(db_url)
    try:
        code, out = run("train", "--project", "cams", "--epochs", "3", "--min-steps", "0", "--batch-size", "4",
                        "--device", "cpu", "--max-minutes", "0.000001")
        assert code == 0, out
        assert "image size 32: the median short side of 12 items is 32 px" in out
        assert "planned 6 steps (3 epochs x 2 steps), about " in out
        assert "stopped at --max-minutes 1e-06 after epoch 1 of 3" in out
        code, out = run("train", "--project", "cams", "--max-minutes", "0", "--device", "cpu")
        assert code == 2 and "--max-minutes 0: expected a positive number of minutes" in out
        engine = make_engine(db_url)
        with engine.connect() as conn:
            n = conn.execute(select(model_versions.c.model_id)).all()
        engine.dispose()
        assert len(n) == 1  # the refused run recorded nothing
    finally:
        set_database("sqlite:///alsql.db")
