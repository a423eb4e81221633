"""Strategies that seek the rare class, and the cold start from an encoder's vectors.

In memory: quotas and rankings on synthetic inputs. In the database (SQLite and PostgreSQL):
a toy imbalanced pool with stored predictions, where margin picks only the majority's
predictions and the rare seekers pick the rare-predicted items; the cold start by TypiClust
on an encoder's stored vectors (recorded in the round); a head model's vectors read from its
encoder.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.datasets import pack_f16
from alsql.models.select import create_round, select_items
from alsql.models.strategies import Candidates, get_strategy, score_columns
from alsql.models.strategies.rare import balancing_quotas, class_quotas, rare_classes
from alsql.schema import embeddings, model_versions, predictions, round_items, rounds
from tests.conftest import add_items

RARE_SEEKERS = ("balanced_margin", "class_balanced", "rare_boost")


# ------------------------------------------------------------------------------ in memory


def test_rare_classes_from_label_counts():
    assert rare_classes(np.array([30, 28, 3, 0])).tolist() == [False, False, True, True]
    assert rare_classes(np.array([5, 5, 5])).all()  # nobody rarer: every class counts
    assert rare_classes(np.zeros(4)).all()


def test_class_quotas_respect_budget_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(300):
        avail = rng.integers(0, 12, size=rng.integers(1, 7))
        k = int(rng.integers(0, 60))
        q = class_quotas(avail, k)
        assert q.sum() == min(k, avail.sum())
        assert np.all((q >= 0) & (q <= avail))
        short = q < avail  # a class that could take more has at most one fewer than any other
        if short.any():
            assert q.max() - q[short].min() <= 1
    assert class_quotas(np.array([1, 10, 10, 0]), 10).tolist() == [1, 5, 4, 0]
    assert class_quotas(np.array([5, 5, 5]), 7, order=np.array([2, 1, 0])).tolist() == [2, 2, 3]


def _imbalanced(n_major=40, n_rare=8, classes=4, seed=0):
    """Probabilities where the majority's predictions are the least certain: margin picks them."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n_major + n_rare, classes))
    top = rng.uniform(0.40, 0.55, n_major)  # class 0, small margins
    p[:n_major, 0] = top
    p[:n_major, 1:] = ((1 - top) / (classes - 1))[:, None]
    rare_cls = 1 + np.arange(n_rare) % (classes - 1)
    top = rng.uniform(0.70, 0.85, n_rare)
    p[n_major:] = ((1 - top) / (classes - 1))[:, None]
    p[np.arange(n_major, n_major + n_rare), rare_cls] = top
    return p


def test_rare_seekers_pick_more_rare_predictions_than_margin():
    p = _imbalanced()
    sc = score_columns(p)
    cands = Candidates(np.arange(len(p)), p, None, dict(sc), labeled_counts=np.array([20, 2, 1, 0]))
    got = {}
    for name in ("margin", *RARE_SEEKERS):
        idx, score = get_strategy(name).select(cands, 12, np.random.default_rng(0))
        assert len(set(idx.tolist())) == len(idx) == 12
        got[name] = int((sc["class_id"][idx] != 0).sum())
    assert got["margin"] == 0
    assert got["balanced_margin"] == 8  # every rare prediction: 4 per class is more than the 2-3 each class has
    assert got["class_balanced"] == 8  # the same: the classes with few labels get the budget first
    assert got["rare_boost"] == 8


def test_balancing_quotas_raise_the_classes_with_fewest_labels_first():
    # 70 / 15 / 15 labels: the next 100 go to the two rare classes until they catch up
    assert balancing_quotas(np.array([70, 15, 15]), np.array([500, 500, 500]), 100).tolist() == [0, 50, 50]
    # past 70 each, the rest is split evenly (the one more in class order)
    assert balancing_quotas(np.array([70, 15, 15]), np.array([500, 500, 500]), 130).tolist() == [7, 62, 61]
    # a class with few candidates gives the rest to the next rarest; ties in the given order
    assert balancing_quotas(np.array([19, 1]), np.array([300, 3]), 20).tolist() == [17, 3]
    assert balancing_quotas(np.array([5, 5, 5]), np.array([9, 9, 9]), 4, order=np.array([2, 0, 1])).tolist() == [1, 1, 2]
    assert balancing_quotas(np.array([0, 0]), np.array([0, 0]), 5).tolist() == [0, 0]
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = int(rng.integers(1, 7))
        counts, avail, k = rng.integers(0, 30, c), rng.integers(0, 12, c), int(rng.integers(0, 60))
        q = balancing_quotas(counts, avail, k)
        assert q.sum() == min(k, avail.sum())
        assert np.all((q >= 0) & (q <= avail))
        after = counts + q
        short = q < avail  # a class that could take more is never left more than one below one that got some
        if short.any() and (q > 0).any():
            assert after[short].min() >= after[q > 0].max() - 1


def test_class_balanced_spends_the_budget_on_the_class_with_fewest_labels():
    """Binary, the model predicts the common class everywhere: balanced_margin and class_balanced
    both fall back to the lowest margins (the likeliest rare items); with a few rare predictions
    class_balanced gives them the budget first where balanced_margin splits it evenly."""
    rng = np.random.default_rng(1)
    p1 = np.concatenate([rng.uniform(0.0, 0.3, 90), rng.uniform(0.55, 0.7, 10)])  # 10 predicted rare
    p = np.stack([1 - p1, p1], axis=1)
    sc = score_columns(p)
    cands = Candidates(np.arange(100), p, None, dict(sc), labeled_counts=np.array([38, 2]))
    idx, score = get_strategy("class_balanced").select(cands, 20, np.random.default_rng(0))
    assert int((sc["class_id"][idx] == 1).sum()) == 10  # every rare prediction, then the most uncertain commons
    common = idx[sc["class_id"][idx] == 0]
    assert common.tolist() == np.argsort(sc["margin"][:90])[:10].tolist()
    idx_bm, _ = get_strategy("balanced_margin").select(cands, 12, np.random.default_rng(0))
    idx_cb, _ = get_strategy("class_balanced").select(cands, 12, np.random.default_rng(0))
    assert int((sc["class_id"][idx_bm] == 1).sum()) == 6 and int((sc["class_id"][idx_cb] == 1).sum()) == 10


def test_balanced_margin_ranks_each_class_by_margin_in_turns():
    p = _imbalanced(n_major=6, n_rare=3)
    sc = score_columns(p)
    idx, score = get_strategy("balanced_margin").select(Candidates(np.arange(9), p, None, dict(sc)), 5,
                                                      np.random.default_rng(0))
    cls = sc["class_id"][idx]
    assert sorted(cls[:4].tolist()) == [0, 1, 2, 3]  # one of each class first
    maj = idx[cls == 0]
    assert maj.tolist() == np.argsort(sc["margin"][:6])[: len(maj)].tolist()  # lowest margins first
    np.testing.assert_allclose(score, 1 - sc["margin"][idx])


def test_similar_picks_nearest_to_labeled_rare_items():
    rng = np.random.default_rng(1)
    far = rng.normal(0, 1, size=(50, 4)) + 10.0  # the majority, away from the rare query
    near = rng.normal(0, 0.1, size=(5, 4))  # around the labeled rare item at the origin
    emb = np.concatenate([far, near]).astype(np.float32)
    p = np.full((55, 2), 0.5)
    seen = []

    def by_class(cl):
        seen.append(list(cl))
        return iter([np.zeros((1, 4), np.float32)])

    cands = Candidates(np.arange(55), p, emb, {"margin": np.zeros(55)}, labeled_counts=np.array([30, 1]),
                       labeled_by_class=by_class)
    idx, score = get_strategy("similar").select(cands, 5, np.random.default_rng(0))
    assert sorted(idx.tolist()) == list(range(50, 55)) and seen == [[1]]
    assert np.all(np.diff(score) <= 1e-12)


# ---------------------------------------------------------------------------- in the database


def _model(engine, project_id, status="ready", params=None, arch="cnn") -> int:
    with write_transaction(engine) as conn:
        return conn.execute(insert(model_versions).values(
            project_id=project_id, architecture=arch, params=params or {}, status=status,
        ).returning(model_versions.c.model_id)).scalar_one()


def _store(engine, model_id, ids, p=None, vectors=None, dtype=np.float16):
    with write_transaction(engine) as conn:
        if p is not None:
            sc = score_columns(p)
            conn.execute(insert(predictions), [
                {"model_id": model_id, "item_id": i, "class_id": int(sc["class_id"][j]),
                 "confidence": float(sc["confidence"][j]), "margin": float(sc["margin"][j]),
                 "entropy": float(sc["entropy"][j]), "probs": pack_f16(p[j])}
                for j, i in enumerate(ids)])
        if vectors is not None:
            conn.execute(insert(embeddings), [
                {"model_id": model_id, "item_id": i, "vector": np.asarray(vectors[j], dtype=dtype).astype(
                    "<f2" if dtype == np.float16 else "<f4").tobytes()}
                for j, i in enumerate(ids)])


def _label(engine, project_id, ids, class_id):
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": project_id, "item_id": i, "class_id": class_id} for i in ids])


def _picked(engine, rid):
    with engine.connect() as conn:
        return conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)
                            .order_by(round_items.c.rank)).scalars().all()


def _round(engine, rid):
    with engine.connect() as conn:
        return conn.execute(select(rounds).where(rounds.c.round_id == rid)).one()


def test_rare_seekers_in_the_database(engine, project):
    pid = project.project_id  # classes zero..four
    p = np.pad(_imbalanced(), ((0, 0), (0, 1)))  # class four: never predicted
    ids = add_items(engine, len(p))
    labeled = add_items(engine, 12, start=1000)
    _label(engine, pid, labeled[:10], 0)  # the majority has the labels: classes 1-4 are rare
    _label(engine, pid, labeled[10:], 1)
    mid = _model(engine, pid)
    _store(engine, mid, ids + labeled, np.concatenate([p, np.tile(p[:1], (12, 1))]))
    cls = {i: int(c) for i, c in zip(ids, p.argmax(1))}
    rare_found = {}
    for name in ("margin", *RARE_SEEKERS):
        rid = create_round(engine, pid, name, 12, seed=3)
        got = _picked(engine, rid)
        assert len(got) == len(set(got)) == 12 and not set(got) & set(labeled)
        assert _round(engine, rid).strategy == name
        rare_found[name] = sum(cls[i] != 0 for i in got)
        with write_transaction(engine) as conn:  # close it: the next strategy sees the same pool
            conn.execute(rounds.update().where(rounds.c.round_id == rid).values(status="closed"))
    assert rare_found["margin"] == 0
    assert rare_found["balanced_margin"] == 8 and rare_found["rare_boost"] == 8
    assert rare_found["class_balanced"] == 8
    # Bounds: a budget larger than the pool takes the pool; pending items are never picked twice.
    rid = create_round(engine, pid, "balanced_margin", 500, seed=1)
    first = _picked(engine, rid)
    assert sorted(first) == sorted(ids)
    with pytest.raises(AlsqlError, match="no stored"):  # nothing left: the model is named, not a crash
        other = _model(engine, pid)
        create_round(engine, pid, "balanced_margin", 3, model_id=other)


def test_per_class_split_of_the_budget(engine, project):
    pid = project.project_id
    p = _imbalanced(n_major=200, n_rare=20, classes=5)
    ids = add_items(engine, len(p))
    mid = _model(engine, pid)
    _store(engine, mid, ids, p)
    got, score, used = select_items(engine, pid, "balanced_margin", 10, seed=0)
    assert used == mid and len(got) == 10
    pred = dict(zip(ids, p.argmax(1).tolist()))
    counts = np.bincount([pred[int(i)] for i in got], minlength=5)
    assert counts.tolist() == [2, 2, 2, 2, 2]  # an even split over the five predicted classes
    margin = dict(zip(ids, score_columns(p)["margin"].tolist()))
    np.testing.assert_allclose(score, [1 - margin[int(i)] for i in got], atol=1e-6)
    # class_balanced reads the project's labels per class: classes 0 and 1 have 6 and 4, so the
    # 10 go to classes 2-4 (no labels) first
    labeled = add_items(engine, 10, start=5000)
    _label(engine, pid, labeled[:6], 0)
    _label(engine, pid, labeled[6:], 1)
    got, _score, _ = select_items(engine, pid, "class_balanced", 10, seed=0)
    counts = np.bincount([pred[int(i)] for i in got], minlength=5)
    assert counts[2:].sum() == 10 and counts.max() - counts[2:].min() <= 1


def test_similar_with_a_head_model_reads_its_encoders_vectors(engine, project):
    pid = project.project_id
    rng = np.random.default_rng(2)
    ids = add_items(engine, 40)
    labeled = add_items(engine, 6, start=1000)
    vec = np.concatenate([rng.normal(5, 1, (35, 8)), rng.normal(0, 0.1, (5, 8))])
    lab_vec = np.concatenate([rng.normal(5, 1, (5, 8)), np.zeros((1, 8))])
    enc = _model(engine, pid, status="encoder", arch="hf:tiny",
                 params={"kind": "encoder", "encoder": {"spec": "hf:tiny", "dim": 8, "dtype": "float32"}})
    _store(engine, enc, ids + labeled, vectors=np.concatenate([vec, lab_vec]), dtype=np.float32)
    head = _model(engine, pid, arch="head:linear", params={"head": "linear", "encoder_model_id": enc})
    p = np.tile([0.6, 0.4, 0, 0, 0], (46, 1))
    _store(engine, head, ids + labeled, p)  # no embeddings rows under the head
    _label(engine, pid, labeled[:5], 0)
    _label(engine, pid, labeled[5:], 3)  # the one rare labeled item, at the origin
    got = _picked(engine, create_round(engine, pid, "similar", 5, seed=0))
    assert sorted(got) == ids[35:]
    for name in ("badge", "typiclust", "rare_boost"):  # the other vector readers work through the head too
        assert len(_picked(engine, create_round(engine, pid, name, 3, seed=0))) == 3


def _clusters(rng, sizes, dim=6):
    centres = rng.normal(0, 8, size=(len(sizes), dim))
    return np.concatenate([c + rng.normal(0, 0.5, (n, dim)) for c, n in zip(centres, sizes)]), \
        np.repeat(np.arange(len(sizes)), sizes)


def test_cold_start_is_typiclust_on_the_encoders_vectors(engine, project):
    pid = project.project_id
    ids = add_items(engine, 90)
    # Without an encoder's vectors and without a model: nothing to be uncertain about.
    with pytest.raises(AlsqlError, match="no trained model"):
        create_round(engine, pid, "margin", 3)
    rng = np.random.default_rng(4)
    vec, cluster = _clusters(rng, [40, 30, 20])
    enc = _model(engine, pid, status="encoder", params={"kind": "encoder"}, arch="cnn+simclr")
    _store(engine, enc, ids, vectors=vec)
    _model(engine, pid, status="encoder", params={"kind": "encoder"}, arch="cnn+simclr")  # newer, no vectors
    said = []
    rid = create_round(engine, pid, "margin", 3, seed=5, say=said.append)
    r = _round(engine, rid)
    assert r.strategy == "typiclust" and r.model_id is None
    assert r.params["cold_start"] == {"encoder_model_id": enc, "asked": "margin"}
    assert said == [f"cold start: TypiClust on encoder {enc}'s vectors (no trained model yet)"]
    got = _picked(engine, rid)
    where = dict(zip(ids, cluster.tolist()))
    assert sorted(where[i] for i in got) == [0, 1, 2]  # one typical item of each cluster
    # The same as TypiClust itself on those vectors (the stored float16 ones), same seed.
    v16 = vec.astype(np.float16).astype(np.float32)
    idx, _ = get_strategy("typiclust").select(Candidates(np.asarray(ids), embeddings=v16), 3,
                                              np.random.default_rng(5))
    assert got == [ids[i] for i in idx]
    # Random stays random, and evaluation rounds are untouched by the cold start.
    assert _round(engine, create_round(engine, pid, "random", 2, seed=1)).strategy == "random"
    ev = _round(engine, create_round(engine, pid, "random", 2, purpose="evaluation", seed=1))
    assert ev.strategy == "random" and "cold_start" not in ev.params
    # Once a model is trained, the strategy asked for is used.
    mid = _model(engine, pid)
    _store(engine, mid, ids, np.tile([0.5, 0.5, 0, 0, 0], (90, 1)))
    assert _round(engine, create_round(engine, pid, "margin", 2, seed=1)).strategy == "margin"


def test_select_cli_says_cold_start(sqlite_url):
    from alsql.catalog import create_project
    from alsql.cli import app
    from alsql.db import make_engine

    engine = make_engine(sqlite_url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "cold", ["a", "b"]).project_id
    ids = add_items(engine, 30)
    vec, _ = _clusters(np.random.default_rng(0), [20, 10])
    enc = _model(engine, pid, status="encoder", params={"kind": "encoder"}, arch="cnn+simclr")
    _store(engine, enc, ids, vectors=vec)
    out = CliRunner().invoke(app, ["--db", sqlite_url, "select", "--project", "cold", "--strategy", "rare_boost",
                                   "--budget", "2", "--seed", "1"])
    assert out.exit_code == 0, out.output
    assert f"cold start: TypiClust on encoder {enc}'s vectors" in out.output
    assert "round 1: 2 items (typiclust, train)" in out.output
    engine.dispose()


def test_watcher_select_step_cold_starts(engine, project):
    from alsql.pipelines.watch import Watcher, WatchRules

    pid = project.project_id
    ids = add_items(engine, 40)
    vec, _ = _clusters(np.random.default_rng(1), [25, 15])
    enc = _model(engine, pid, status="encoder", params={"kind": "encoder"}, arch="cnn+simclr")
    _store(engine, enc, ids, vectors=vec)
    said = []
    w = Watcher(engine, WatchRules(round_budget=4, marts=False, pretrain_items=0, strategy="rare_boost"),
                say=said.append)
    w.tick()
    with engine.connect() as conn:
        r = conn.execute(select(rounds).where(rounds.c.project_id == pid)).one()
    assert r.strategy == "typiclust" and r.params["cold_start"]["encoder_model_id"] == enc
    assert any(f"cold start: TypiClust on encoder {enc}'s vectors" in s for s in said)
