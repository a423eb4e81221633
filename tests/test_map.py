"""The 2-D map: t-SNE fitted on a sample, the rest placed by transform; PCA fallback; bulk x, y
write-back; the writers flush by time, so a crash mid-inference keeps what was already scored."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from sqlalchemy import func, insert, select

from alsql.db import write_transaction
from alsql.loaders.writer import PredictionWriter, update_xy
from alsql.models.maps import PERPLEXITY, compute_map, map_params, sample_keys
from alsql.schema import embeddings, model_versions, predictions
from tests.conftest import add_items


def _model(engine, project_id: int) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(
            project_id=project_id, architecture="smallcnn", label_count=0, metrics={}, status="ready",
        ).returning(model_versions.c.model_id)).scalar_one()


def _clusters(n: int, k: int = 5, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, d)) * 6
    cls = rng.integers(0, k, n)
    return (centres[cls] + rng.normal(0, 1, (n, d))).astype(np.float32), cls


def _write_vectors(engine, model_id: int, ids, vec) -> None:
    with PredictionWriter(engine, model_id, kind="embeddings") as w:
        w.write(item_ids=ids, vector=vec)


def _xy(engine, model_id: int) -> dict[int, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(select(embeddings.c.item_id, embeddings.c.x, embeddings.c.y)
                            .where(embeddings.c.model_id == model_id)).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_transform_places_new_items_near_their_neighbours_of_the_sample(engine, project):
    ids = np.array(add_items(engine, 500))
    vec, cls = _clusters(500)
    mid = _model(engine, project.project_id)
    _write_vectors(engine, mid, ids, vec)
    rep = compute_map(engine, mid, "tsne", sample=250, seed=3, chunk=100, n_jobs=1)
    assert (rep.method, rep.fitted, rep.placed, rep.note) == ("tsne", 250, 500, None)
    m = map_params(engine, mid)
    assert m["method"] == "tsne" and m["sample"] == 250 and m["items"] == 500
    xy = _xy(engine, mid)
    pos = np.array([xy[int(i)] for i in ids], dtype=float)
    assert not np.isnan(pos).any()
    fitted = (sample_keys(ids, 3) <= m["threshold"]) & (ids <= m["max_item"])
    assert fitted.sum() == 250
    # Each transformed item lands next to its 10 nearest fitted neighbours (in the embedding
    # space): much closer than a random fitted point, and among its own cluster in 2-D.
    ref_vec, ref_pos, ref_cls = vec[fitted], pos[fitted], cls[fitted]
    spread = np.median(np.linalg.norm(ref_pos - ref_pos.mean(axis=0), axis=1))
    near, same = [], []
    for v, p, c in zip(vec[~fitted], pos[~fitted], cls[~fitted]):
        nn = np.argsort(np.linalg.norm(ref_vec - v, axis=1))[:10]
        near.append(np.linalg.norm(ref_pos[nn].mean(axis=0) - p))
        nn2 = np.argsort(np.linalg.norm(ref_pos - p, axis=1))[:10]
        same.append(np.mean(ref_cls[nn2] == c))
    assert np.median(near) < 0.15 * spread, (np.median(near), spread)
    assert np.mean(same) > 0.95


def test_later_items_join_the_same_map_without_moving_the_others(engine, project):
    ids = np.array(add_items(engine, 300))
    vec, _ = _clusters(360, seed=1)
    mid = _model(engine, project.project_id)
    _write_vectors(engine, mid, ids, vec[:300])
    compute_map(engine, mid, "tsne", sample=200, seed=0, n_jobs=1)
    before = _xy(engine, mid)
    new = np.array(add_items(engine, 60, start=300))
    _write_vectors(engine, mid, new, vec[300:])
    rep = compute_map(engine, mid, "tsne", sample=200, seed=0, n_jobs=1)
    assert rep.placed == 60 and rep.fitted == 0
    after = _xy(engine, mid)
    assert all(after[i] == before[i] for i in before)  # nobody moved
    assert all(after[int(i)][0] is not None for i in new)
    assert map_params(engine, mid)["items"] == 360
    assert compute_map(engine, mid, "tsne", n_jobs=1).placed == 0  # nothing left to place


def test_small_model_falls_back_to_pca_with_a_note(engine, project):
    n = 3 * PERPLEXITY  # one short of what t-SNE needs
    ids = np.array(add_items(engine, n))
    vec, _ = _clusters(n, seed=2)
    mid = _model(engine, project.project_id)
    _write_vectors(engine, mid, ids, vec)
    rep = compute_map(engine, mid, "tsne", n_jobs=1)
    assert rep.method == "pca" and rep.placed == n
    assert f"{n} embeddings" in rep.note and "PCA" in rep.note
    m = map_params(engine, mid)
    assert m["method"] == "pca" and m["note"] == rep.note and len(m["components"]) == 2
    assert all(x is not None and y is not None for x, y in _xy(engine, mid).values())


def test_map_errors_name_the_input(engine, project):
    from alsql.errors import AlsqlError

    mid = _model(engine, project.project_id)
    with pytest.raises(AlsqlError, match="--map 'umap'"):
        compute_map(engine, mid, "umap")
    with pytest.raises(AlsqlError, match="--map-sample 1"):
        compute_map(engine, mid, sample=1)
    assert compute_map(engine, mid).note.startswith("the model has no embeddings")


def test_update_xy_writes_only_existing_rows(engine, project):
    ids = np.array(add_items(engine, 30))
    mid = _model(engine, project.project_id)
    _write_vectors(engine, mid, ids, np.ones((30, 4)))
    update_xy(engine, mid, np.append(ids[::-1], 10**9), np.arange(31.0), -np.arange(31.0))
    xy = _xy(engine, mid)
    assert len(xy) == 30 and xy[int(ids[-1])] == (0.0, -0.0) and xy[int(ids[0])] == (29.0, -29.0)


def test_writer_flushes_by_time(engine, project):
    ids = add_items(engine, 6)
    mid = _model(engine, project.project_id)
    w = PredictionWriter(engine, mid, kind="embeddings", buffer_rows=1000, flush_seconds=0.2)
    w.write(item_ids=ids[:3], vector=np.ones((3, 4)))
    assert len(_xy(engine, mid)) == 0  # held: neither count nor time reached
    time.sleep(0.25)
    w.write(item_ids=ids[3:], vector=np.ones((3, 4)))
    assert len(_xy(engine, mid)) == 6  # written without close()


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(4, 3)

    def embed(self, x):
        return x.flatten(1)[:, :4]


def test_a_crash_mid_inference_keeps_what_was_scored_seconds_ago(engine, project):
    from alsql.models.infer import score_batches

    ids = add_items(engine, 40)
    mid = _model(engine, project.project_id)

    def batches():
        for s in range(0, 40, 4):
            if s == 32:
                raise RuntimeError("the worker died")
            time.sleep(0.05)
            yield torch.rand(4, 1, 2, 2), None, ids[s:s + 4]

    with pytest.raises(RuntimeError, match="died"):
        score_batches(engine, mid, _Net(), batches(), "cpu", buffer_rows=50_000, flush_seconds=0.1)
    with engine.connect() as conn:
        p = conn.execute(select(func.count()).select_from(predictions).where(predictions.c.model_id == mid)).scalar()
        e = conn.execute(select(func.count()).select_from(embeddings).where(embeddings.c.model_id == mid)).scalar()
    # The buffer was never full (50,000 rows), yet all but the last ~0.1 s of work is stored,
    # and every stored prediction has its embedding.
    assert 24 <= p <= 32 and e >= p, (p, e)


def test_a_crash_while_storing_the_last_rows_leaves_no_prediction_without_its_embedding(engine, project, monkeypatch):
    """The final rows are stored embeddings first: a worker killed between the two writes
    leaves its items in the inference queue, so a re-run scores them and writes both."""
    from alsql.models.infer import score_batches

    ids = add_items(engine, 40)
    mid = _model(engine, project.project_id)
    ended = []

    def batches():
        for s in range(0, 40, 8):
            yield torch.rand(8, 1, 2, 2), None, ids[s:s + 8]
        ended.append(True)

    real_flush = PredictionWriter.flush

    def flush(self):
        if ended and self._parts and self.kind == "embeddings":
            raise RuntimeError("the worker died while storing")
        return real_flush(self)

    def stored():
        with engine.connect() as conn:
            return [set(conn.execute(select(t.c.item_id).where(t.c.model_id == mid)).scalars())
                    for t in (predictions, embeddings)]

    monkeypatch.setattr(PredictionWriter, "flush", flush)
    with pytest.raises(RuntimeError, match="storing"):
        score_batches(engine, mid, _Net(), batches(), "cpu", buffer_rows=50_000, flush_seconds=3600)
    p, e = stored()
    assert p <= e, sorted(p - e)  # every stored prediction has its embedding
    monkeypatch.setattr(PredictionWriter, "flush", real_flush)
    ended.clear()
    assert score_batches(engine, mid, _Net(), batches(), "cpu") == 40
    assert stored() == [set(ids)] * 2


def test_map_png_marks_the_rounds_picks(engine, project, tmp_path):
    from alsql.annotate import insert_annotations
    from alsql.models.select import create_round
    from alsql.pipelines.mapplot import plot_map

    ids = np.array(add_items(engine, 200))
    vec, cls = _clusters(200, seed=4)
    mid = _model(engine, project.project_id)
    _write_vectors(engine, mid, ids, vec)
    with PredictionWriter(engine, mid, kind="predictions") as pw:
        pw.write(item_ids=ids, class_id=cls, confidence=np.full(200, 0.8), margin=np.full(200, 0.3),
                 entropy=np.full(200, 0.5))
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": project.project_id, "item_id": int(i), "class_id": int(c)}
                                  for i, c in zip(ids[:30], cls[:30])])
    compute_map(engine, mid, "tsne", n_jobs=1)
    rid = create_round(engine, project.project_id, "margin", 12, model_id=mid, seed=0)
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    assert plot_map(engine, project.project_id, mid, plain) == 200
    assert plot_map(engine, project.project_id, mid, marked, round_id=rid) == 200
    from PIL import Image

    a = np.asarray(Image.open(plain).convert("L"), dtype=int)
    b = np.asarray(Image.open(marked).convert("L"), dtype=int)
    assert a.shape == b.shape and ((b < 60) & (a >= 60)).sum() > 100  # black rings around the 12 picks


def test_map_command(db_url, engine, project):
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database

    ids = np.array(add_items(engine, 40))
    mid = _model(engine, project.project_id)
    _write_vectors(engine, mid, ids, _clusters(40, seed=6)[0])
    runner = CliRunner()
    try:
        small = runner.invoke(app, ["--db", db_url, "map", "--project", project.name, "--jobs", "1"])
        assert small.exit_code == 0, small.output
        assert "note: model" in small.output and "pca map fitted on 40 items, 40 items placed" in small.output
        bad = runner.invoke(app, ["--db", db_url, "map", "--project", project.name, "--map", "umap"])
        assert bad.exit_code != 0 and "--map 'umap'" in str(bad.exception)
    finally:
        set_database("sqlite:///alsql.db")
    assert map_params(engine, mid)["method"] == "pca"


def test_claim_workers_map_the_model_once_after_the_last_chunk(sqlite_url, tmp_path):
    """Two workers share the chunks; exactly one maps, after every chunk is done, and every item has x, y."""
    import threading

    from alsql.db import make_engine
    from alsql.models.fit import TrainConfig
    from alsql.models.train import train_and_record
    from alsql.pipelines.claims import run_claims
    from tests.pipeline_helpers import QUICK_TRAIN, label, make_project

    engine = make_engine(sqlite_url)
    proj, oracle = make_project(engine, tmp_path / "png", 140)
    label(engine, proj.project_id, oracle, sorted(oracle)[:40])
    mid = train_and_record(engine, proj.project_id, TrainConfig(**QUICK_TRAIN), grayscale=True,
                           artifacts=str(tmp_path / "art")).model_id
    reports = []

    def work(name):
        reports.append(run_claims(engine, proj.name, chunk_items=20, lease_seconds=30, batch_size=16,
                                  device="cpu", worker=name, poll=0.1))

    threads = [threading.Thread(target=work, args=(f"w{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    mapped = [r.mapped for r in reports if r.mapped is not None]
    assert len(reports) == 2 and [m for m in mapped if m] == [140]  # one worker placed every item
    assert sum(r.items for r in reports) == 140
    xy = _xy(engine, mid)
    assert len(xy) == 140 and all(x is not None for x, _ in xy.values())
    m = map_params(engine, mid)
    assert m["method"] == "tsne" and m["items"] == 140
    with engine.connect() as conn:
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == mid)).scalar()
    assert "map_claim" not in params  # released
    engine.dispose()
