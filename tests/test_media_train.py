"""Train and infer on tiny audio and video projects: every ok segment gets a prediction and
an embedding; corrupt files are recorded and skipped."""

from __future__ import annotations

from sqlalchemy import func, select

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.loaders.ingest import ingest
from alsql.models.fit import TrainConfig
from alsql.schema import embeddings, items, model_versions, predictions, sources
from tests.media_support import make_tone, make_video, truncate

QUICK = TrainConfig(epochs=2, min_steps=4, batch_size=8, patience=100, image_size=16)


def _label_all(engine, proj, truth_of):
    """Label every ok item: half for training, a few through an evaluation round."""
    from alsql.models.select import create_round
    from alsql.pipelines.loop import answer_round

    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri).where(items.c.status == "ok")).all()
    oracle = {r.item_id: truth_of(r.uri) for r in rows}
    rid = create_round(engine, proj.project_id, "random", 4, purpose="evaluation", seed=1)
    answer_round(engine, proj, rid, oracle)
    rid = create_round(engine, proj.project_id, "random", len(rows) - 4, seed=2)
    answer_round(engine, proj, rid, oracle)
    return oracle


def _train_and_infer(engine, proj, tmp_path):
    from alsql.models.infer import infer_project
    from alsql.models.train import train_project

    mid = train_project(engine, proj.project_id, QUICK, artifacts=str(tmp_path / "art"))
    report = infer_project(engine, proj.project_id, mid, batch_size=8)
    with engine.connect() as conn:
        ok = conn.execute(select(func.count()).select_from(items).where(items.c.status == "ok")).scalar_one()
        n_pred = conn.execute(select(func.count()).select_from(predictions)
                              .where(predictions.c.model_id == mid)).scalar_one()
        n_emb = conn.execute(select(func.count()).select_from(embeddings)
                             .where(embeddings.c.model_id == mid, embeddings.c.vector.is_not(None))).scalar_one()
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
    assert report.items == ok == n_pred == n_emb
    return row


def test_audio_project_trains_and_infers(engine, tmp_path):
    folder = tmp_path / "sounds"
    for i in range(4):
        make_tone(folder / f"low-{i}.wav", seconds=3, sr=8000, freq=300, noise=0.05, seed=i)
        make_tone(folder / f"high-{i}.flac", seconds=3, sr=8000, freq=2500, noise=0.05, seed=10 + i)
    (folder / "empty.wav").write_bytes(b"")
    report = ingest(engine, str(folder))
    assert report.new == 24 and report.corrupt == 1
    with write_transaction(engine) as conn:
        proj = create_project(conn, "machines", ["low", "high"])
    _label_all(engine, proj, lambda uri: 0 if "/low-" in uri else 1)
    row = _train_and_infer(engine, proj, tmp_path)
    assert row.architecture == "audio_cnn"
    assert row.params["media"]["kind"] == "audio" and row.params["media"]["seconds"] == 1.0


def test_video_project_trains_and_infers(engine, tmp_path):
    folder = tmp_path / "cams"
    for i in range(3):
        make_video(folder / f"left-{i}.mp4", seconds=4, fps=8, size=32, pattern="left", seed=i)
        make_video(folder / f"right-{i}.mkv", seconds=4, fps=8, size=32, pattern="right", seed=i)
    truncate(make_video(folder / "broken.mp4", seconds=4, fps=8, size=32), 0.5)
    make_tone(folder / "no-picture.mp4", seconds=2)  # no video stream
    report = ingest(engine, str(folder))
    assert report.new == 12 and report.corrupt == 2
    with engine.connect() as conn:
        assert conn.execute(select(sources.c.status).where(sources.c.uri.like("%broken.mp4"))).scalar() == "corrupt"
    with write_transaction(engine) as conn:
        proj = create_project(conn, "traffic", ["left", "right"])
    _label_all(engine, proj, lambda uri: 0 if "/left-" in uri else 1)
    row = _train_and_infer(engine, proj, tmp_path)
    assert row.architecture == "video_cnn"
    assert row.params["media"] == {**row.params["media"], "kind": "video", "image_size": 16, "frames": 8}


def test_a_segment_that_fails_to_decode_is_marked_and_training_goes_on(engine, tmp_path):
    folder = tmp_path / "sounds"
    for i in range(3):
        make_tone(folder / f"low-{i}.wav", seconds=2, sr=8000, freq=300, noise=0.05, seed=i)
        make_tone(folder / f"high-{i}.wav", seconds=2, sr=8000, freq=2500, noise=0.05, seed=10 + i)
    ingest(engine, str(folder))
    (folder / "low-0.wav").unlink()  # gone after ingest: its segments are missing when read
    with write_transaction(engine) as conn:
        proj = create_project(conn, "machines", ["low", "high"])
    _label_all(engine, proj, lambda uri: 0 if "/low-" in uri else 1)
    from alsql.models.train import train_project

    mid = train_project(engine, proj.project_id, QUICK, artifacts=str(tmp_path / "art"))
    assert mid > 0
    with engine.connect() as conn:
        bad = conn.execute(select(items.c.status, items.c.error).where(items.c.uri.like("%low-0.wav#%"))).all()
    assert bad and all(r.status == "missing" and "source file missing" in r.error for r in bad)
