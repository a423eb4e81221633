"""Imbalance-aware training: the default finds a 5 % class that plain cross-entropy never
predicts; the kept checkpoint is the best by balanced accuracy; warnings name the class."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from alsql.catalog import create_project
from alsql.cli import app
from alsql.config import set_settings
from alsql.db import make_engine, write_transaction
from alsql.migrations import upgrade
from alsql.models.fit import TrainConfig
from alsql.models.metrics import (
    balanced_accuracy,
    class_weights,
    imbalance_warnings,
    macro_f1,
    metrics_dict,
    selection_key,
)
from alsql.schema import items, model_versions

CFG = TrainConfig(epochs=10, min_steps=100, batch_size=32, patience=1000, image_size=8, device="cpu")
TRAIN_ARGS = ["--epochs", "10", "--min-steps", "100", "--batch-size", "32", "--patience", "1000",
              "--grayscale", "--image-size", "8", "--device", "cpu"]


def write_toy(folder, n: int, minority: float, seed: int) -> dict[str, int]:
    """8x8 grey PNGs whose brightness is N(0.4, 0.16) (class 0) or N(0.6, 0.16) (class 1, a
    ``minority`` share), plus pixel noise: the classes overlap, so under a 95/5 prior the most
    accurate rule almost never says 1 while the balanced rule finds about 3/4 of class 1."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[: int(round(n * minority))] = 1
    rng.shuffle(y)
    level = rng.normal(np.where(y == 1, 0.6, 0.4), 0.16)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        px = (np.clip(level[i] + rng.normal(0, 0.05, size=(8, 8)), -0.3, 1.3) + 0.3) / 1.6  # rarely saturates
        name = f"{folder.name}-{i:04d}.png"
        Image.fromarray((px * 255).astype(np.uint8), mode="L").save(folder / name)
        truth[name] = int(y[i])
    return truth


def _label_all(engine, proj, truth, purpose: str, seed: int) -> None:
    from alsql.models.select import create_round
    from alsql.pipelines.loop import answer_round

    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri)).all()
    oracle = {r.item_id: truth[r.uri.rsplit("/", 1)[1]] for r in rows if r.uri.rsplit("/", 1)[1] in truth}
    rid = create_round(engine, proj.project_id, "random", len(truth), purpose=purpose, seed=seed)
    assert answer_round(engine, proj, rid, oracle) == len(truth)


def toy_project(tmp, train: int, pool: int = 0):
    """``(engine, project, url)``: a SQLite project in ``tmp`` of ``train`` labeled training images
    (95 % common / 5 % rare), 200 evaluation images (half each) and ``pool`` unlabeled images of the
    training prior."""
    from alsql.loaders.ingest import ingest

    url = f"sqlite:///{tmp / 'alsql.db'}"
    upgrade(url)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        proj = create_project(conn, "toy", ["common", "rare"])
    evaluation = write_toy(tmp / "eval", 200, 0.5, seed=100)
    ingest(engine, str(tmp / "eval"))
    _label_all(engine, proj, evaluation, "evaluation", seed=1)
    labeled = write_toy(tmp / "train", train, 0.05, seed=0)
    ingest(engine, str(tmp / "train"))
    _label_all(engine, proj, labeled, "train", seed=2)
    if pool:
        write_toy(tmp / "pool", pool, 0.05, seed=3)
        ingest(engine, str(tmp / "pool"))
    return engine, proj, url


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A project of 400 training images (95 % common / 5 % rare) and 200 evaluation images (half each)."""
    tmp = tmp_path_factory.mktemp("toy")
    engine, proj, url = toy_project(tmp, 400)
    yield engine, proj, tmp, url
    engine.dispose()


def _model(engine, model_id):
    with engine.connect() as conn:
        return conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()


def test_default_finds_the_minority_plain_cross_entropy_does_not(toy):
    from dataclasses import replace

    from alsql.models.train import train_and_record

    engine, proj, tmp, _ = toy
    plain = train_and_record(engine, proj.project_id, replace(CFG, class_weight="none"), grayscale=True,
                             artifacts=str(tmp / "art"))
    default = train_and_record(engine, proj.project_id, CFG, grayscale=True, artifacts=str(tmp / "art"))
    weighted = train_and_record(engine, proj.project_id, replace(CFG, class_weight="balanced"), grayscale=True,
                                artifacts=str(tmp / "art"))
    p, d, w = (_model(engine, o.model_id) for o in (plain, default, weighted))
    assert p.metrics["per_class_recall"]["rare"] < 0.2  # collapsed to the majority
    for m in (d, w):
        assert m.metrics["per_class_recall"]["rare"] > 0.5
        assert m.metrics["balanced_accuracy"] > p.metrics["balanced_accuracy"] + 0.2
    # What was used, and the rule, are recorded: the default the logit adjustment, log(380 / 400)
    # and log(20 / 400); balanced the weights; plain cross-entropy neither.
    assert d.params["class_weight"] == "logit_adjust" and d.params["label_counts"] == {"common": 380, "rare": 20}
    assert d.params["logit_adjustment"] == pytest.approx({"common": np.log(0.95), "rare": np.log(0.05)}, abs=1e-5)
    assert d.params["class_weights"] is None and d.params["class_weight_rule"].startswith("logit_adjust:")
    assert w.params["class_weights"] == pytest.approx({"common": 400 / (2 * 380), "rare": 400 / (2 * 20)}, rel=1e-5)
    assert w.params["logit_adjustment"] is None and w.params["class_weight_rule"].startswith("balanced:")
    assert p.params["class_weight"] == "none" and p.params["class_weights"] is None
    assert p.params["logit_adjustment"] is None
    # The collapsed model is warned about, naming the class; the default is not.
    assert any("rare" in w and "recall 0" in w for w in plain.warnings) or any(
        "predicts common" in w for w in plain.warnings)
    assert plain.warnings == p.metrics["warnings"] and default.warnings == []


def test_logit_adjustment_offsets():
    from alsql.models.metrics import logit_adjustment

    assert logit_adjustment([380, 20]) == pytest.approx([np.log(0.95), np.log(0.05)], abs=1e-6)
    assert logit_adjustment([5, 5, 5]) == pytest.approx([np.log(1 / 3)] * 3, abs=1e-6)  # no effect: a common shift
    # a class without labels is treated as the commonest (never boosted); nothing labeled: no offsets
    assert logit_adjustment([30, 10, 0]) == pytest.approx([np.log(0.75), np.log(0.25), np.log(0.75)], abs=1e-6)
    assert logit_adjustment([0, 0]) == [0.0, 0.0]
    assert logit_adjustment([4, 1], tau=2.0) == pytest.approx([2 * np.log(0.8), 2 * np.log(0.2)], abs=1e-6)


def test_cli_train_shows_balanced_figures_and_warns(toy, monkeypatch):
    engine, _proj, tmp, url = toy
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp / "cli-art"))
    monkeypatch.setenv("CI", "1")
    set_settings(None)
    try:
        r = CliRunner().invoke(app, ["--db", url, "train", "--project", "toy", "--class-weight", "none", *TRAIN_ARGS],
                               env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        out = " ".join(r.output.split())
        assert "balanced accuracy 0." in out and "macro-F1 " in out and "recall: common 1.000, rare 0." in out
        assert "class weights: none (plain cross-entropy)" in out
        assert "warning: recall 0 on the evaluation set for class rare" in out
        assert ("warning: the model predicts common for 100% of the evaluation set (200 items): it may have "
                "collapsed to one class (the pool is not scored at train time") in out
        r = CliRunner().invoke(app, ["--db", url, "status", "--project", "toy"], env={"COLUMNS": "250"})
        assert r.exit_code == 0 and "balanced accuracy" in r.output and "macro-F1" in r.output
        assert "rare 0.00" in r.output
        bad = CliRunner().invoke(app, ["--db", url, "train", "--project", "toy", "--class-weight", "equal"])
        assert bad.exit_code != 0
        assert "--class-weight 'equal': expected logit_adjust, balanced, none" in bad.output + str(bad.exception)
    finally:
        set_settings(None)


def test_infer_warns_and_the_mart_shows_balanced_figures(toy, monkeypatch):
    engine, proj, tmp, url = toy
    from dataclasses import replace

    from alsql.models.train import train_project

    mid = train_project(engine, proj.project_id, replace(CFG, class_weight="none"), grayscale=True,
                        artifacts=str(tmp / "art"))
    from alsql.loaders.ingest import ingest

    write_toy(tmp / "pool", 60, 0.0, seed=7)  # unlabeled, all common
    ingest(engine, str(tmp / "pool"))
    set_settings(None)
    try:
        r = CliRunner().invoke(app, ["--db", url, "infer", "--project", "toy", "--model", str(mid), "--map", "none",
                                     "--device", "cpu"], env={"COLUMNS": "250"})
        assert r.exit_code == 0, r.output
        # Every ok item is scored: 600 labeled + 60 new; 120 of them rare, all predicted common.
        assert re.search(rf"warning: the model predicts common for (9[5-9]|100)% of the scored pool of model {mid} "
                         r"\(660 items\): it may have collapsed", " ".join(r.output.split())), r.output
    finally:
        set_settings(None)
    # model_performance shows the same balanced accuracy and macro-F1 as scikit-learn on the
    # model's predictions of the evaluation set (every weight 1: a random evaluation round).
    from sklearn.metrics import balanced_accuracy_score, f1_score
    from sqlalchemy import text

    from alsql.pipelines.marts import build
    from alsql.schema import predictions
    from alsql.schema.views import evaluation_set

    result = build(url, select=["model_performance"], work_dir=tmp / "dbt")
    assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
    with engine.connect() as conn:
        pairs = conn.execute(select(evaluation_set.c.class_id, predictions.c.class_id).join(
            predictions, predictions.c.item_id == evaluation_set.c.item_id).where(predictions.c.model_id == mid)).all()
        rows = conn.execute(text("select balanced_accuracy, macro_f1 from model_performance where model_id = :m"),
                            {"m": mid}).all()
    t, p = zip(*pairs)
    assert len(t) == 200 and len(rows) == 2
    for bal, f1 in rows:
        assert bal == pytest.approx(balanced_accuracy_score(t, p)) and f1 == pytest.approx(
            f1_score(t, p, average="macro", zero_division=0))


def test_checkpoint_rule_prefers_balanced_accuracy_over_accuracy():
    # 95 common, 5 rare. A predicts common for all (accuracy 0.95, balanced 0.5);
    # B finds 4 rare at the cost of 10 common (accuracy 0.89, balanced 0.847).
    a = np.array([[95, 0], [5, 0]])
    b = np.array([[85, 10], [1, 4]])
    assert np.trace(a) / a.sum() > np.trace(b) / b.sum()
    assert selection_key(b, loss=50.0) > selection_key(a, loss=10.0)  # even at a higher loss
    assert balanced_accuracy(a) == 0.5 and balanced_accuracy(b) == pytest.approx((85 / 95 + 4 / 5) / 2)
    # Ties by balanced accuracy go to macro-F1, then to the lower loss.
    c = np.array([[80, 20], [0, 10]])  # recall 0.8 / 1.0
    d = np.array([[90, 10], [1, 9]])  # recall 0.9 / 0.9: same balanced accuracy, better F1
    assert balanced_accuracy(c) == pytest.approx(balanced_accuracy(d))
    assert macro_f1(d) > macro_f1(c) and selection_key(d, 9.0) > selection_key(c, 1.0)
    assert selection_key(d, 1.0) > selection_key(d, 2.0)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_metrics_match_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, f1_score
    from sklearn.utils.class_weight import compute_class_weight

    from alsql.models.metrics import confusion_matrix

    rng = np.random.default_rng(3)
    for _ in range(20):
        t = rng.integers(0, 4, size=50)
        p = np.where(rng.random(50) < 0.6, t, rng.integers(0, 5, size=50))
        cm = confusion_matrix(t, p, 5)
        assert balanced_accuracy(cm) == pytest.approx(balanced_accuracy_score(t, p))
        assert macro_f1(cm) == pytest.approx(f1_score(t, p, average="macro"))
        w = rng.uniform(0.2, 3.0, size=50)  # evaluation items' inverse-probability weights
        cmw = confusion_matrix(t, p, 5, w)
        assert cmw.sum() == pytest.approx(w.sum())
        assert balanced_accuracy(cmw) == pytest.approx(balanced_accuracy_score(t, p, sample_weight=w))
        assert macro_f1(cmw) == pytest.approx(f1_score(t, p, average="macro", sample_weight=w))
    y = np.array([0] * 30 + [1] * 6 + [3] * 4)
    ref = compute_class_weight("balanced", classes=np.array([0, 1, 3]), y=y)
    got = class_weights(np.bincount(y, minlength=5))
    assert got[2] is None and got[4] is None  # no labels: no weight term
    assert [got[0], got[1], got[3]] == pytest.approx(ref, rel=1e-5)


def test_warning_lines_name_the_class():
    names = ["clear", "zone_entry", "other"]
    cm = np.array([[90, 0, 0], [6, 0, 0], [3, 0, 1]])
    lines = imbalance_warnings(cm, names)
    assert lines[0] == "recall 0 on the evaluation set for class zone_entry: the model never finds it"
    assert lines[1].startswith("the model predicts clear for 99% of the evaluation set (100 items)")
    fine = np.array([[50, 5, 0], [2, 8, 0], [0, 1, 4]])
    assert imbalance_warnings(fine, names) == []
    assert imbalance_warnings(np.array([[5, 0], [0, 0]]), ["a", "b"])[0].startswith("the model predicts a for 100%")
    m = metrics_dict(cm, names)
    assert m["balanced_accuracy"] == pytest.approx((1 + 0 + 0.25) / 3, abs=1e-6) and "macro_f1" in m
