"""Heads on stored encoder vectors: training, scoring without media, strategies and the map."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.writer import PredictionWriter, update_xy
from alsql.schema import embeddings, items, model_versions, predictions, round_items
from alsql.schema.views import training_set
from tests.conftest import add_items

DIM = 16
CLASSES = 5  # the ``project`` fixture's classes


def _encoder(engine, project_id: int, dim: int = DIM) -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(
            project_id=project_id, architecture="test-encoder", status="encoder", artifact_uri=None,
            params={"kind": "encoder", "encoder": {"spec": "test", "dim": dim, "dtype": "float16"}},
            metrics={}).returning(model_versions.c.model_id)).scalar_one()


def _toy(engine, project, n: int = 400, seed: int = 0, with_vectors=None):
    """``n`` items in ``CLASSES`` separable Gaussian clusters, their vectors under an encoder.

    Returns ``(item_ids, truth, encoder_id, vectors)``."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(add_items(engine, n), dtype=np.int64)
    truth = rng.integers(0, CLASSES, n)
    centres = rng.normal(0, 4.0, (CLASSES, DIM))
    vec = (centres[truth] + rng.normal(0, 1.0, (n, DIM)) + 3.0).astype(np.float32)  # off-centre, like ReLU features
    enc = _encoder(engine, project.project_id)
    keep = np.ones(n, bool) if with_vectors is None else with_vectors
    with PredictionWriter(engine, enc, kind="embeddings") as w:
        w.write(item_ids=ids[keep], vector=vec[keep])
    return ids, truth, enc, vec


def _label(engine, project_id, ids, truth):
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": project_id, "item_id": int(i), "class_id": int(c)}
                                  for i, c in zip(ids, truth)])


def _labeled_toy(engine, project, n=400, train=100, evaluate=60, **kw):
    from alsql.models.select import create_round

    ids, truth, enc, vec = _toy(engine, project, n, **kw)
    _label(engine, project.project_id, ids[:train], truth[:train])
    rid = create_round(engine, project.project_id, "random", evaluate, purpose="evaluation", seed=3)
    with engine.connect() as conn:
        picked = conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars().all()
    pos = np.searchsorted(ids, picked)
    _label(engine, project.project_id, ids[pos], truth[pos])
    return ids, truth, enc, vec


def _predictions(engine, model_id):
    with engine.connect() as conn:
        rows = conn.execute(select(predictions.c.item_id, predictions.c.class_id)
                            .where(predictions.c.model_id == model_id).order_by(predictions.c.item_id)).all()
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_head_learns_a_separable_problem_and_records_its_metrics(engine, project, tmp_path, head):
    from alsql.models.heads import train_head

    ids, truth, enc, _ = _labeled_toy(engine, project)
    mid = train_head(engine, project.project_id, head=head, seed=1, say=None, artifacts=str(tmp_path))
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
        n_train = conn.execute(select(func.count()).select_from(training_set)
                               .where(training_set.c.project_id == project.project_id)).scalar_one()
    assert row.status == "ready" and row.architecture == f"head:{head}"
    p, m = row.params, row.metrics
    assert p["head"] == head and p["encoder_model_id"] == enc and p["seed"] == 1
    assert row.label_count == n_train == 100
    assert p["class_weight"] == "logit_adjust" and p["class_weights"] is None
    assert set(p["logit_adjustment"]) == set(project.classes) and p["label_counts"]["zero"] == int((truth[:100] == 0).sum())
    assert row.trained_on_annotation_id is not None
    assert p["init"] == {"init": "pretrained", "encoder_model_id": enc, "head": "frozen",
                         "why": f"--head {head}: a {head} head on the encoder's stored vectors"}
    assert m["evaluated"] == 60 and m["balanced_accuracy"] >= 0.95 and m["accuracy"] >= 0.95
    assert set(m["per_class_recall"]) == set(project.classes) and m["macro_f1"] >= 0.9


def test_train_head_without_embeddings_is_one_clear_error(engine, project, tmp_path):
    from alsql.models.heads import train_head

    ids = add_items(engine, 10)
    _label(engine, project.project_id, ids, [0, 1] * 5)
    with pytest.raises(AlsqlError, match=r"no stored embeddings.*alsql embed --project"):
        train_head(engine, project.project_id, say=None, artifacts=str(tmp_path))
    enc = _encoder(engine, project.project_id)
    with pytest.raises(AlsqlError, match=rf"--encoder-model {enc}: the encoder has no stored embeddings"):
        train_head(engine, project.project_id, encoder_model_id=enc, say=None, artifacts=str(tmp_path))
    with pytest.raises(AlsqlError, match=r"--head 'big'"):
        train_head(engine, project.project_id, head="big", say=None, artifacts=str(tmp_path))


def test_infer_head_reads_no_media_writes_once_and_resumes(engine, project, tmp_path, monkeypatch):
    import alsql.loaders.writer as writer
    from alsql.models.heads import infer_head, train_head

    n = 300
    has = np.ones(n, bool)
    has[::10] = False  # items without a vector are not in the head's queue
    ids, truth, enc, _ = _labeled_toy(engine, project, n=n, with_vectors=has)
    with write_transaction(engine) as conn:  # a corrupt item is never scored
        conn.execute(items.update().where(items.c.item_id == int(ids[1])).values(status="corrupt"))
    mid = train_head(engine, project.project_id, seed=0, say=None, artifacts=str(tmp_path))
    # The items' uris name files that do not exist: any media read would fail.
    flushes = {"n": 0}
    real = writer.PredictionWriter.flush

    def dying(self):
        if self._parts and flushes["n"] == 2:
            raise RuntimeError("killed")
        flushes["n"] += 1 if self._parts else 0
        return real(self)

    monkeypatch.setattr(writer.PredictionWriter, "flush", dying)
    with pytest.raises(RuntimeError, match="killed"):
        infer_head(engine, project.project_id, mid, page=64)
    want = np.sort(ids[has & (ids != ids[1])])
    first_two = want[want <= ids[has][0] - 1 + 128]  # pages: windows of 64 keys from the first vector
    got, _ = _predictions(engine, mid)
    np.testing.assert_array_equal(got, first_two)  # two whole pages, nothing of the third
    monkeypatch.setattr(writer.PredictionWriter, "flush", real)
    rep = infer_head(engine, project.project_id, mid, page=64)
    got, cls = _predictions(engine, mid)
    assert rep.items == len(want) - len(first_two) and rep.map is None
    np.testing.assert_array_equal(got, want)  # exactly one per in-scope ok item with a vector
    pos = np.searchsorted(ids, got)
    assert (cls == truth[pos]).mean() >= 0.95
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(embeddings)
                            .where(embeddings.c.model_id == mid)).scalar_one() == 0
    assert infer_head(engine, project.project_id, mid).items == 0


def test_head_through_infer_project_and_claims(engine, project, tmp_path):
    from alsql.models.heads import train_head
    from alsql.models.infer import infer_project
    from alsql.pipelines.claims import chunk_progress, run_claims

    ids, _truth, enc, _ = _labeled_toy(engine, project, n=200)
    lin = train_head(engine, project.project_id, head="linear", say=None, artifacts=str(tmp_path))
    with pytest.raises(AlsqlError, match="linear head"):
        infer_project(engine, project.project_id, lin, bald=4)
    assert infer_project(engine, project.project_id, lin).items == 200
    mlp = train_head(engine, project.project_id, head="mlp", say=None, artifacts=str(tmp_path))
    first = run_claims(engine, project.project_id, mlp, chunk_items=50, max_chunks=2, bald=5, worker="a:1")
    rest = run_claims(engine, project.project_id, mlp, chunk_items=50, bald=5, worker="a:2")
    assert first.items + rest.items == 200 and first.mapped is None and rest.mapped is None
    assert chunk_progress(engine, mlp) == {"done": 4}
    got, _ = _predictions(engine, mlp)
    np.testing.assert_array_equal(got, ids)
    with engine.connect() as conn:
        bald = conn.execute(select(predictions.c.bald).where(predictions.c.model_id == mlp)).scalars().all()
        assert all(b is not None and b >= 0 for b in bald)
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == enc)).scalar()
    assert "map" not in (params or {})  # scoring a head fits no map


@pytest.mark.parametrize("strategy", ["coreset", "typiclust", "badge", "cluster_margin"])
def test_batch_strategies_of_a_head_read_the_encoders_vectors(engine, project, tmp_path, strategy):
    from alsql.models.heads import infer_head, train_head
    from alsql.models.select import create_round

    ids, _truth, enc, vec = _labeled_toy(engine, project, n=300)
    mid = train_head(engine, project.project_id, head="mlp" if strategy == "badge" else "linear", say=None,
                     artifacts=str(tmp_path))
    infer_head(engine, project.project_id, mid)
    rid = create_round(engine, project.project_id, strategy, 12, model_id=mid, seed=5, candidates=150)
    with engine.connect() as conn:
        picked = conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars().all()
    assert len(picked) == 12 and len(set(picked)) == 12


def test_coreset_of_a_head_is_far_from_the_labels_in_encoder_space(engine, project, tmp_path):
    """One unlabeled item sits far from every other in the encoder's space: coreset's first pick."""
    from alsql.models.heads import infer_head, train_head
    from alsql.models.select import select_items

    ids, truth, enc, vec = _labeled_toy(engine, project, n=200)
    far = add_items(engine, 1, start=10_000)[0]  # unlabeled, far from everything
    with PredictionWriter(engine, enc, kind="embeddings") as w:
        w.write(item_ids=[far], vector=np.full((1, DIM), 60.0, np.float32))
    mid = train_head(engine, project.project_id, say=None, artifacts=str(tmp_path))
    infer_head(engine, project.project_id, mid)
    picked, _score, used = select_items(engine, project.project_id, "coreset", 1, mid, seed=0)
    assert used == mid and int(picked[0]) == far


def test_badge_vectors_of_heads(engine, project, tmp_path):
    from alsql.models.heads import badge_vectors, embedding_model_id, train_head

    _ids, _truth, enc, vec = _labeled_toy(engine, project, n=150)
    lin = train_head(engine, project.project_id, head="linear", say=None, artifacts=str(tmp_path))
    mlp = train_head(engine, project.project_id, head="mlp", say=None, artifacts=str(tmp_path))
    with engine.connect() as conn:
        assert embedding_model_id(conn, lin) == embedding_model_id(conn, mlp) == enc
        assert embedding_model_id(conn, enc) == enc
        np.testing.assert_array_equal(badge_vectors(conn, lin, vec[:7]), vec[:7])
        hidden = badge_vectors(conn, mlp, vec[:7])
    assert hidden.shape == (7, 256) and (hidden >= 0).all()


def test_map_of_a_head_is_its_encoders_map(engine, project, tmp_path):
    from alsql.catalog import get_project
    from alsql.models.heads import infer_head, train_head
    from alsql.web import mapdata
    from alsql.web.data import map_points

    ids, _truth, enc, vec = _labeled_toy(engine, project, n=200)
    update_xy(engine, enc, ids, vec[:, 0], vec[:, 1])
    mid = train_head(engine, project.project_id, say=None, artifacts=str(tmp_path))
    infer_head(engine, project.project_id, mid)
    with engine.connect() as conn:
        proj = get_project(conn, project.project_id)
        body = mapdata.map_binary(conn, proj, mid)
        n = (len(body) - mapdata.HEADER) // 12
        assert n == len(ids)
        pred = np.frombuffer(body, np.uint8, n, mapdata.HEADER + 9 * n)
        assert (pred != mapdata.NONE).all()  # the head's guesses on the encoder's points
        pts = map_points(conn, proj, mid)
        assert len(pts["item_id"]) == len(ids) and all(c is not None for c in pts["predicted"])
        x0, x1 = float(vec[:, 0].min()) - 1, float(vec[:, 0].max()) + 1
        y0, y1 = float(vec[:, 1].min()) - 1, float(vec[:, 1].max()) + 1
        sel = mapdata.select_in_polygon(conn, proj, mid, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    assert len(sel["inside"]) == len(ids)
    made = mapdata.map_round(engine, proj, mid, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    assert made["items"] == len(sel["unlabeled"]) > 0


def test_cli_train_and_infer_a_head(sqlite_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alsql.catalog import create_project
    from alsql.cli import app
    from alsql.db import make_engine

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    engine = make_engine(sqlite_url)
    with write_transaction(engine) as conn:
        project = create_project(conn, "toy", ["zero", "one", "two", "three", "four"])
    ids, _truth, _enc, _ = _labeled_toy(engine, project, n=150)
    r = CliRunner().invoke(app, ["--db", sqlite_url, "train", "--project", "toy", "--head", "linear"])
    assert r.exit_code == 0, r.output
    assert "head:linear on the stored vectors of encoder" in r.output and "balanced accuracy" in r.output
    r = CliRunner().invoke(app, ["--db", sqlite_url, "infer", "--project", "toy"])
    assert r.exit_code == 0, r.output
    assert "scored 150 items from stored vectors" in r.output
    r = CliRunner().invoke(app, ["--db", sqlite_url, "train", "--project", "toy", "--head", "wide"])
    assert r.exit_code != 0 and "--head 'wide': expected auto, frozen, finetune, linear or mlp" in str(r.exception)
    engine.dispose()


def test_round_model_is_a_head_while_labels_are_few(engine, project, tmp_path, monkeypatch):
    from alsql.models.heads import FOUNDATION_WHY, train_round_model

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    ids, truth, enc, _ = _toy(engine, project, n=200)
    _label(engine, project.project_id, ids[:40], truth[:40])  # 8 per class: under the frozen rule's 15
    said = []
    mid = train_round_model(engine, project.project_id, say=said.append)
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
    assert row.architecture == "head:linear" and row.params["encoder_model_id"] == enc
    # Not an ``alsql pretrain`` encoder: it cannot be fine-tuned here, so the head, without measuring.
    assert any(FOUNDATION_WHY in s and f"encoder {enc}" in s for s in said)
    assert row.params["init"]["head"] == "frozen" and row.params["init"]["why"] == FOUNDATION_WHY
    assert "choice" not in row.params["init"]
    mlp = train_round_model(engine, project.project_id, head_kind="mlp")
    with engine.connect() as conn:
        assert conn.execute(select(model_versions.c.architecture)
                            .where(model_versions.c.model_id == mlp)).scalar() == "head:mlp"


def test_loop_trains_heads_and_scores_from_vectors(engine, project, tmp_path, monkeypatch):
    """The items' files do not exist: a loop that read media would fail; this one never does."""
    from alsql.pipelines.loop import Oracle, run_loop

    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp_path / "art"))
    ids, truth, enc, _ = _toy(engine, project, n=240)
    oracle = Oracle({int(i): int(c) for i, c in zip(ids, truth)}, len(ids), [])
    out = run_loop(engine, project.project_id, 2, 10, "margin", oracle, eval_budget=30, map_method="pca")
    assert [r.labels for r in out] == [10, 20]
    with engine.connect() as conn:
        for r in out:
            arch = conn.execute(select(model_versions.c.architecture)
                                .where(model_versions.c.model_id == r.model_id)).scalar()
            assert arch == "head:linear"
            n = conn.execute(select(func.count()).select_from(predictions)
                             .where(predictions.c.model_id == r.model_id)).scalar_one()
            assert n == len(ids)
        enc_params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == enc)).scalar()
    assert enc_params["map"]["method"] == "pca"  # the map is the encoder's
    assert out[-1].balanced_accuracy is not None and out[-1].balanced_accuracy > 0.8


def test_infer_head_keeps_to_the_projects_scope(engine, project, tmp_path):
    from alsql.models.heads import infer_head, train_head
    from alsql.scope import set_scope

    ids, truth, enc, _ = _labeled_toy(engine, project, n=200)
    outside = np.asarray(add_items(engine, 30, start=50_000), np.int64)  # uris under file:///synthetic/0000500..
    with PredictionWriter(engine, enc, kind="embeddings") as w:
        w.write(item_ids=outside, vector=np.ones((30, DIM), np.float32))
    with write_transaction(engine) as conn:
        set_scope(conn, project.project_id, prefixes=["file:///synthetic/000000"])
    mid = train_head(engine, project.project_id, say=None, artifacts=str(tmp_path))
    assert infer_head(engine, project.project_id, mid).items == len(ids)
    got, _ = _predictions(engine, mid)
    np.testing.assert_array_equal(got, ids)


def test_a_head_that_collapses_is_aligned_on_the_pools_vectors(engine, project, tmp_path):
    """Labels that the vectors do not explain (80 % class zero): plain cross-entropy learns the
    prior and says zero everywhere; the guard aligns the head to the labels' shares on a sample
    of the pool's stored vectors, and the scored pool then holds every labeled class."""
    from alsql.models.heads import infer_head, pool_vectors, train_head

    ids, _truth, enc, _vec = _toy(engine, project, 400)
    labels = np.r_[np.zeros(80, np.int64), np.repeat(np.arange(1, CLASSES), 5)]
    _label(engine, project.project_id, ids[:100], labels)
    sample = pool_vectors(engine, project.project_id, enc, n=128, seed=0, runs=4)
    assert sample.shape == (128, DIM)  # 300 unlabeled items with vectors: the sample is full
    kept = train_head(engine, project.project_id, head="linear", seed=0, say=None, artifacts=str(tmp_path),
                      class_weight="none", collapse_guard=False)
    said: list[str] = []
    mid = train_head(engine, project.project_id, head="linear", seed=0, say=said.append, artifacts=str(tmp_path),
                     class_weight="none")
    with engine.connect() as conn:
        k, g = (conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == m)).scalar_one()
                for m in (kept, mid))
    assert k["collapse_guard"] is None
    rec = g["collapse_guard"]
    assert rec["acted"] and rec["class_name"] == project.classes[0] and rec["share_before"] >= 0.95
    assert rec["target"] == [0.8, 0.05, 0.05, 0.05, 0.05] and rec["sample"] == 300
    assert rec["shares_after"][0] == pytest.approx(0.8, abs=0.05)
    assert said and "aligned to the labels' class shares" in said[0]
    for m, classes in ((kept, 1), (mid, CLASSES)):
        infer_head(engine, project.project_id, m)
        _ids, pred = _predictions(engine, m)
        assert len(set(pred.tolist())) == classes
