"""The collapse guard (``alsql.models.align``): offsets that bring the argmax shares to the
labels' class shares, acting only on a collapse; ``alsql train`` applies it on a sample of the
unlabeled pool, records it, and ``--no-collapse-guard`` keeps the model as trained."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from sqlalchemy import func, select
from typer.testing import CliRunner

from alsql.cli import app
from alsql.config import set_settings
from alsql.models.align import aligning_offsets, collapse_guard, guard_line, guard_network, logits_of
from alsql.schema import model_versions
from tests.test_train_imbalance import CFG, TRAIN_ARGS, toy_project


@pytest.mark.parametrize("classes,spread", [(2, 0.05), (3, 0.1), (20, 1.0), (3, 5.0)])
def test_offsets_bring_the_argmax_shares_to_the_target(classes, spread):
    rng = np.random.default_rng(classes)
    z = rng.normal(0, spread, (2000, classes))
    z[:, 0] += 3 * spread  # class 0 wins nearly everywhere
    target = rng.dirichlet(np.ones(classes))
    b = aligning_offsets(z, target)
    share = np.bincount((z + b).argmax(1), minlength=classes) / len(z)
    assert np.abs(share - target).sum() < 0.02
    # a class of share 0 is pushed out
    t0 = np.r_[0.0, np.full(classes - 1, 1.0 / (classes - 1))]
    share0 = np.bincount((z + aligning_offsets(z, t0)).argmax(1), minlength=classes) / len(z)
    assert share0[0] < 0.01


def test_the_guard_acts_only_on_a_collapse():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.1, (1000, 3))
    z[:, 0] += 1.0  # 'ok' for every item
    g = collapse_guard(z, [14, 3, 3])
    assert g is not None and g["class"] == 0 and g["share_before"] == 1.0 and g["sample"] == 1000
    assert g["shares_after"] == pytest.approx([0.7, 0.15, 0.15], abs=0.01) and g["target"] == [0.7, 0.15, 0.15]
    assert "predicted ok for 100% of 1000 pool items" in guard_line(g, ["ok", "scratch", "dent"])
    # Not a collapse: the labels are as one-sided as the predictions (96 % against 97 %) ...
    z2 = rng.normal(0, 1, (1000, 2))
    z2[:, 0] += np.where(rng.random(1000) < 0.97, 10, -10)
    assert collapse_guard(z2, [96, 4]) is None
    # ... or the top class is under 95 % of the sample; nothing labeled, or a mismatch of classes
    z3 = rng.normal(0, 1, (1000, 3))
    assert collapse_guard(z3, [10, 5, 5]) is None
    assert collapse_guard(z, [0, 0, 0]) is None and collapse_guard(z, [5, 5]) is None
    # Many labels of the classes it no longer predicts: the pool may just hold few of them any more
    # (rare-seeking rounds took them), so the labels' shares are no target: left alone.
    assert collapse_guard(z, [300, 20, 15]) is None and collapse_guard(z, [300, 20, 5]) is not None


def test_guard_network_sets_decision_offsets_and_leaves_the_weights():
    from alsql.models.align import decide, offsets_of
    from alsql.models.networks import SmallCNN
    from alsql.models.predict import predict_batch

    torch.manual_seed(0)
    net = SmallCNN(3, 1, width=8)
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    x = torch.randn(500, 1, 16, 16)
    z = logits_of(net, x)
    assert z.shape == (500, 3) and (z.argmax(1) == 0).all()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    g = guard_network(net, z, [10, 5, 5])
    assert g is not None and offsets_of(net) == pytest.approx(g["offsets"], abs=1e-6)
    # The weights, the logits and the probabilities are the network's own; the decision is aligned.
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    out = predict_batch(net, x)
    assert (out["probs"].argmax(1) == 0).all()
    share = np.bincount(out["class_id"], minlength=3) / 500
    assert share == pytest.approx([0.5, 0.25, 0.25], abs=0.02)
    with torch.no_grad():
        assert np.array_equal(decide(net, net(x)).numpy(), out["class_id"])
    # a model that has not collapsed is left as it was; without offsets predict_batch gives no class_id
    net2 = SmallCNN(3, 1, width=8)
    assert guard_network(net2, np.c_[np.zeros(300), np.ones(300), np.zeros(300)] + np.eye(3)[np.arange(300) % 3],
                         [10, 5, 5]) is None
    assert offsets_of(net2) is None and "class_id" not in predict_batch(net2, x)


@pytest.fixture(scope="module")
def toy_pool(tmp_path_factory):
    """200 labeled training images (95 % common / 5 % rare: 10 rare labels), 200 evaluation images
    (half each), and 400 unlabeled pool images of the training prior."""
    tmp = tmp_path_factory.mktemp("align")
    engine, proj, url = toy_project(tmp, 200, pool=400)
    yield engine, proj, tmp, url
    engine.dispose()


def _model(engine, model_id):
    with engine.connect() as conn:
        return conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()


def test_train_aligns_a_collapsed_model_and_records_it(toy_pool):
    from alsql.models.train import train_and_record

    engine, proj, tmp, _ = toy_pool
    plain = replace(CFG, class_weight="none")  # plain cross-entropy on 95 / 5 collapses to 'common'
    said: list[str] = []
    kept = train_and_record(engine, proj.project_id, replace(plain, collapse_guard=False), grayscale=True,
                            artifacts=str(tmp / "art"))
    guarded = train_and_record(engine, proj.project_id, plain, grayscale=True, artifacts=str(tmp / "art"),
                               say=said.append)
    k, g = _model(engine, kept.model_id), _model(engine, guarded.model_id)
    assert k.params["collapse_guard"] is None and k.metrics["per_class_recall"]["rare"] < 0.1
    rec = g.params["collapse_guard"]
    assert rec["acted"] is True and rec["class_name"] == "common" and rec["share_before"] >= 0.95
    assert rec["sample"] == 400 and rec["target"] == [0.95, 0.05]  # the whole pool: it is under the sample size
    assert rec["shares_after"][1] == pytest.approx(0.05, abs=0.02)
    assert rec["evaluation_before"]["per_class_recall"]["rare"] == k.metrics["per_class_recall"]["rare"]
    # The same training, the decision aligned: the evaluation set (half rare) now finds the rare class,
    # and the figures recorded are the aligned model's.
    assert g.metrics["per_class_recall"]["rare"] > 0.2
    assert g.metrics["balanced_accuracy"] > k.metrics["balanced_accuracy"] + 0.1
    assert any("its decision was aligned to the labels' class shares (common 95%, rare 5%)" in s for s in said)
    # The saved artifact carries the offsets (its weights are those of the same training unguarded):
    # scoring the pool predicts the rare class too, with the network's own probabilities.
    from alsql.models.infer import infer_project

    from alsql.models.align import offsets_of
    from alsql.models.artifacts import load_model

    (net_k, meta_k, _), (net_g, meta_g, _) = (load_model(engine, m) for m in (kept.model_id, guarded.model_id))
    assert meta_k["decision_offsets"] is None and offsets_of(net_k) is None
    assert offsets_of(net_g) == pytest.approx(rec["offsets"], abs=1e-6) and meta_g["decision_offsets"] == rec["offsets"]
    assert all(torch.equal(v, net_k.state_dict()[k]) for k, v in net_g.state_dict().items())
    infer_project(engine, proj.project_id, guarded.model_id, device="cpu", map_method=None)
    from alsql.models.pool import selectable
    from alsql.schema import predictions

    with engine.connect() as conn:
        rows = conn.execute(select(predictions.c.item_id, predictions.c.class_id, predictions.c.network_class_id,
                                   predictions.c.margin)
                            .where(predictions.c.model_id == guarded.model_id,
                                   selectable(proj.project_id, predictions.c.item_id))).all()
    decision = np.array([r.class_id for r in rows])
    network = np.array([r.network_class_id for r in rows])
    assert (decision == 1).sum() > 10
    # Beside the decision, the network's own argmax (the guard acted on a model that predicts 'common'
    # nearly everywhere): the per-class strategies group by it, as they rank by its margins.
    assert (network == 0).mean() >= 0.95 and (network != decision).any()
    infer_project(engine, proj.project_id, kept.model_id, device="cpu", map_method=None)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(predictions).where(
            predictions.c.model_id == kept.model_id, predictions.c.network_class_id.is_not(None))).scalar_one() == 0
    from alsql.models.select import select_items

    ids, _, _ = select_items(engine, proj.project_id, "balanced_margin", 20, guarded.model_id, seed=0)
    margin = {r.item_id: r.margin for r in rows}
    by_net = {c: sorted((r for r in rows if r.network_class_id == c), key=lambda r: (r.margin, r.item_id))
              for c in np.unique(network).tolist()}
    quota = min(10, len(by_net.get(1, [])))  # the network's rare class gives what it has, the rest to 'common'
    want = {r.item_id for r in by_net.get(1, [])[:quota]} | {r.item_id for r in by_net[0][:20 - quota]}
    assert set(ids.tolist()) == want and len(ids) == 20 and all(i in margin for i in ids.tolist())


def test_a_model_that_has_not_collapsed_is_kept(toy_pool):
    from alsql.models.train import train_and_record

    engine, proj, tmp, _ = toy_pool
    out = train_and_record(engine, proj.project_id, CFG, grayscale=True, artifacts=str(tmp / "art"))
    rec = _model(engine, out.model_id).params["collapse_guard"]
    assert rec["acted"] is False and rec["sample"] == 400 and rec["top_share"] < 0.95


def test_cli_no_collapse_guard(toy_pool, monkeypatch):
    engine, _proj, tmp, url = toy_pool
    monkeypatch.setenv("ALSQL_ARTIFACTS", str(tmp / "cli-art"))
    set_settings(None)
    try:
        r = CliRunner().invoke(app, ["--db", url, "train", "--project", "toy", "--class-weight", "none",
                                     "--no-collapse-guard", *TRAIN_ARGS], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        with engine.connect() as conn:
            row = conn.execute(select(model_versions).order_by(model_versions.c.model_id.desc())).first()
        assert row.params["collapse_guard"] is None and "aligned" not in r.output
        r = CliRunner().invoke(app, ["--db", url, "train", "--project", "toy", "--class-weight", "none", *TRAIN_ARGS],
                               env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "its decision was aligned to the labels' class shares" in " ".join(r.output.split())
    finally:
        set_settings(None)
