"""Training, inference and batch-aware selection end to end on real digit scans."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import delete, func, select

from alsql.catalog import create_project
from alsql.db import make_engine, write_transaction
from alsql.errors import AlsqlError
from alsql.models.fit import TrainConfig
from alsql.models.strategies import score_columns
from alsql.schema import embeddings, items, model_versions, predictions, round_items
from alsql.schema.views import training_set

CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
QUICK = TrainConfig(epochs=2, min_steps=6, batch_size=32, patience=100, image_size=8)


def write_scans(folder, n: int = 150):
    """The first ``n`` digits as 8x8 PNGs; returns ``{file name: class id}``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
        truth[f"{i:04d}.png"] = int(d.target[i])
    return truth


def make_digits_project(url: str, folder, n: int = 150, train: int = 60, evaluate: int = 30, name: str = "scans"):
    """Ingest ``n`` scans; label ``train`` for training and ``evaluate`` through an evaluation round."""
    from alsql.loaders.ingest import ingest
    from alsql.models.select import create_round
    from alsql.pipelines.loop import answer_round

    truth = write_scans(folder, n)
    engine = make_engine(url)
    ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        proj = create_project(conn, name, CLASSES)
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri).order_by(items.c.item_id)).all()
    oracle = {r.item_id: truth[r.uri.rsplit("/", 1)[1]] for r in rows}
    if evaluate:
        rid = create_round(engine, proj.project_id, "random", evaluate, purpose="evaluation", seed=1)
        answer_round(engine, proj, rid, oracle)
    if train:
        rid = create_round(engine, proj.project_id, "random", train, seed=2)
        answer_round(engine, proj, rid, oracle)
    return engine, proj, oracle


@pytest.fixture
def scans(db_url, tmp_path):
    engine, proj, oracle = make_digits_project(db_url, tmp_path / "scans")
    yield engine, proj, oracle, tmp_path
    engine.dispose()


def _count(engine, table, model_id):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(table.c.model_id == model_id)).scalar()


def test_train_records_a_model_version(scans):
    from alsql.models.train import train_project

    engine, proj, _, tmp = scans
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp / "art"))
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
        newest = conn.execute(select(func.max(training_set.c.annotation_id))).scalar()
    assert row.architecture == "cnn" and row.label_count == 60 and row.status == "ready"
    assert row.trained_on_annotation_id >= newest
    assert 0.0 <= row.metrics["accuracy"] <= 1.0 and row.metrics["evaluated"] == 30
    assert set(row.metrics["per_class_recall"]) == set(CLASSES)
    assert row.params["in_channels"] == 1 and row.params["image_size"] == 8 and row.params["lr"] == QUICK.lr
    assert row.artifact_uri.startswith("file://") and (tmp / "art").is_dir()
    assert not list((tmp / "art").rglob("checkpoints/*.pt"))  # removed once recorded


def test_train_needs_labels(db_url, tmp_path):
    from alsql.models.train import train_project

    engine, proj, _ = make_digits_project(db_url, tmp_path / "s", n=20, train=0, evaluate=0)
    with pytest.raises(AlsqlError, match="no labels"):
        train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp_path / "art"))
    engine.dispose()


@pytest.mark.sqlite
def test_train_resumes_from_checkpoint(sqlite_url, tmp_path, monkeypatch):
    import alsql.models.train as tr

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=80, train=40, evaluate=20)
    cfg = TrainConfig(epochs=4, min_steps=1, batch_size=16, patience=100, image_size=8)
    real, calls = tr.save_object, []

    def crash_after_two(uri, obj):
        real(uri, obj)
        calls.append(obj.get("epoch"))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(tr, "save_object", crash_after_two)
    with pytest.raises(RuntimeError, match="simulated"):
        tr.train_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp_path / "art"))
    assert calls == [0, 1] and list((tmp_path / "art").rglob("checkpoints/*.pt"))
    monkeypatch.setattr(tr, "save_object", real)
    out = tr.train_and_record(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp_path / "art"))
    assert [h["epoch"] for h in out.fit.history] == [0, 1, 2, 3]  # epochs 0-1 restored, 2-3 run
    with engine.connect() as conn:
        metrics = conn.execute(select(model_versions.c.metrics)).scalar_one()
    assert metrics["resumed"] is True and metrics["epochs"] == 4
    engine.dispose()


def test_infer_scores_everything_and_resumes(scans):
    from alsql.loaders.datasets import unpack_f16
    from alsql.models.infer import infer_project
    from alsql.models.train import train_project

    engine, proj, _, tmp = scans
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp / "art"))
    rep = infer_project(engine, proj.project_id, bald=4, device="cpu")
    assert rep.model_id == mid and rep.items == 150
    assert _count(engine, predictions, mid) == 150 == _count(engine, embeddings, mid)
    with engine.connect() as conn:
        p = conn.execute(select(predictions).where(predictions.c.model_id == mid).limit(20)).all()
        e = conn.execute(select(embeddings).where(embeddings.c.model_id == mid).limit(5)).all()
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == mid)).scalar()
    probs = np.stack([np.asarray(unpack_f16(r.probs), dtype=np.float32) for r in p])
    assert probs.shape == (20, 10)
    sc = score_columns(probs)
    np.testing.assert_allclose([r.margin for r in p], sc["margin"], atol=2e-3)
    # the stored class is the top of the full-precision probabilities: within float16 rounding of the top here
    assert all(probs[i, r.class_id] >= probs[i].max() - 2e-3 for i, r in enumerate(p))
    assert all(r.bald is not None and r.bald >= 0 for r in p)
    assert all(len(unpack_f16(r.vector)) == 128 and r.x is not None for r in e)
    assert params["map"]["method"] == "tsne" and params["map"]["items"] == 150  # t-SNE map of every item
    # A crash that lost part of the output: the re-run scores only what is missing.
    with write_transaction(engine) as conn:
        conn.execute(delete(predictions).where(predictions.c.model_id == mid, predictions.c.item_id > 100))
    again = infer_project(engine, proj.project_id, mid, device="cpu")
    assert again.items == 50 and _count(engine, predictions, mid) == 150


def test_batch_strategies_select_from_stored_embeddings(scans):
    from alsql.models.infer import infer_project
    from alsql.models.select import create_round
    from alsql.models.train import train_project

    engine, proj, _, tmp = scans
    train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp / "art"))
    infer_project(engine, proj.project_id, device="cpu")
    with engine.connect() as conn:
        labeled = set(conn.execute(select(training_set.c.item_id)).scalars())
    taken: set[int] = set()
    for name in ("coreset", "badge", "cluster_margin", "typiclust", "margin"):
        rid = create_round(engine, proj.project_id, name, 6, seed=0)
        with engine.connect() as conn:
            got = conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars().all()
        assert len(got) == len(set(got)) == 6, name
        assert not set(got) & labeled and not set(got) & taken, name  # pending items are not re-picked
        taken |= set(got)


@pytest.mark.sqlite
def test_weights_file(sqlite_url, tmp_path):
    from alsql.models.networks import build_network, load_weights
    from alsql.models.train import train_project

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=60, train=30, evaluate=0)
    path = tmp_path / "init.pt"
    # another head size: skipped; saved with the max pooling of a 32-px network, which an 8-px
    # project would not pick: the network takes the file's pooling, so only the head is skipped
    torch.save(build_network("cnn", 3, 1, {"pool": "avgmax"}).state_dict(), path)
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, weights=str(path),
                        artifacts=str(tmp_path / "art"))
    with engine.connect() as conn:
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == mid)).scalar()
    assert params["weights_skipped"] == ["fc.bias", "fc.weight"]
    assert params["layout"] == {"pool": "avgmax"}
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(AlsqlError, match="list.pt.*not a PyTorch state dict"):
        load_weights(build_network("cnn", 10, 1), tmp_path / "list.pt")
    (tmp_path / "bad.pt").write_text("not a model")
    with pytest.raises(AlsqlError, match="bad.pt"):
        load_weights(build_network("cnn", 10, 1), tmp_path / "bad.pt")
    with pytest.raises(AlsqlError, match="expected an existing"):
        load_weights(build_network("cnn", 10, 1), tmp_path / "missing.pt")
    engine.dispose()


@pytest.mark.sqlite
def test_cli_train_and_infer(sqlite_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alsql.cli import app

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=60, train=30, evaluate=10)
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    from alsql.config import set_settings

    set_settings(None)
    r = CliRunner().invoke(app, ["--db", sqlite_url, "train", "--project", "scans", "--epochs", "2", "--min-steps", "4",
                                 "--grayscale", "--image-size", "8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "model 1: cnn on 30 labels" in r.output
    r = CliRunner().invoke(app, ["--db", sqlite_url, "infer", "--project", "scans", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "scored 60 items" in r.output
    r = CliRunner().invoke(app, ["--db", sqlite_url, "infer", "--project", "scans", "--device", "cpu"])
    assert "scored 0 items" in r.output
    set_settings(None)
    engine.dispose()
