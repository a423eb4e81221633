"""The measured start (``alsql.models.choose``): head on frozen features, fine-tune or random
weights, chosen by held-out balanced accuracy, recorded with the scores and the reason; explicit
``--head`` / ``--init`` win; the warning when the encoder's probe is no better than a random
network's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sqlalchemy import select

from alsql.errors import AlsqlError
from alsql.models.choose import ARMS, HEAD_MARGIN, fold_count, measure_choice, pick_arm, probe_warning, stratified_folds
from alsql.models.fit import TrainConfig
from alsql.models.networks import SmallCNN
from alsql.schema import model_versions
from tests.test_train_infer import make_digits_project

QUICK = TrainConfig(epochs=2, min_steps=4, batch_size=32, patience=100, image_size=8, device="cpu")
TINY = TrainConfig(epochs=2, min_steps=6, batch_size=32, patience=100, device="cpu")


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None], torch.tensor(d.target)


def _net():
    return SmallCNN(10, 1, width=8)


def test_folds_are_stratified_even_and_seeded():
    y = np.repeat(np.arange(4), [3, 7, 10, 12])
    assert fold_count(y) == 3 and fold_count(np.repeat(np.arange(3), 20)) == 5
    f = stratified_folds(y, 3, seed=4)
    assert np.array_equal(f, stratified_folds(y, 3, seed=4))
    assert sorted(np.bincount(f).tolist()) in ([10, 11, 11], [10, 10, 12])
    for c in range(4):  # each class spread over the folds as evenly as its count allows
        per = np.bincount(f[y == c], minlength=3)
        assert per.max() - per.min() <= 1


def test_perfect_frozen_features_pick_the_head_with_scores_and_reason():
    """Stored vectors that name the class, on pixels that are pure noise: the head wins."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6)
    feats = np.eye(10, dtype=np.float32)[y] * 3 + rng.normal(0, 0.1, (60, 10)).astype(np.float32)
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    c = measure_choice(y, 10, x=x, make_net=_net, features=feats, cfg=TINY, arms=("head", "random"))
    assert c.mode == "head"
    assert c.scores["head"] == 1.0 and c.scores["random"] < 0.5 and "probe_random" in c.scores
    assert "head has the best held-out balanced accuracy" in c.why and "random" in c.why
    assert c.method == "5-fold stratified cross-validation on 60 labels"
    assert c.as_params()["scores"] == c.scores


def test_the_head_is_left_only_for_an_arm_better_by_the_margin():
    assert pick_arm({"head": 0.80, "finetune": 0.80 + HEAD_MARGIN, "random": 0.5}) == "head"
    assert pick_arm({"head": 0.80, "finetune": 0.81 + HEAD_MARGIN, "random": 0.5}) == "finetune"
    assert pick_arm({"head": 0.20, "finetune": 0.40, "random": 0.405}) == "finetune"  # within TIE: the cheaper
    assert pick_arm({"head": 0.20, "finetune": 0.30, "random": 0.45}) == "random"
    assert pick_arm({"finetune": 0.3, "random": 0.3}) == "finetune" and pick_arm({"head": 0.1}) == "head"
    with pytest.raises(AlsqlError, match="no arm"):
        pick_arm({})


def test_from_the_switch_the_head_is_kept_only_when_it_beats_every_arm_by_the_tie():
    from alsql.models.choose import SWITCH_PER_CLASS, TIE

    many = SWITCH_PER_CLASS
    assert pick_arm({"head": 0.80, "finetune": 0.80 - 2 * TIE, "random": 0.5}, per_class=many) == "head"
    assert pick_arm({"head": 0.80, "finetune": 0.80 - TIE / 2, "random": 0.5}, per_class=many) == "finetune"
    assert pick_arm({"head": 0.80, "finetune": 0.80 - 2 * TIE, "random": 0.5}, per_class=many - 1) == "head"
    assert pick_arm({"head": 0.80, "finetune": 0.80 + HEAD_MARGIN / 2}, per_class=many - 1) == "head"
    assert pick_arm({"head": 0.80, "finetune": 0.80 + HEAD_MARGIN / 2}, per_class=many) == "finetune"


def test_head_on_stored_vectors_alone_is_the_only_arm():
    y = np.repeat(np.arange(3), 5)
    feats = np.eye(3, dtype=np.float32)[y]
    c = measure_choice(y, 3, features=feats)
    assert c.mode == "head" and set(c.scores) == {"head"} and "only arm measured" in c.why and c.warning is None


def test_bad_input_is_refused():
    with pytest.raises(AlsqlError, match="arms"):
        measure_choice([0, 1], 2, features=np.zeros((2, 3)), arms=("linear",))
    with pytest.raises(AlsqlError, match="one label per item"):
        measure_choice([0, 1, 1], 2, features=np.zeros((2, 3)))


def test_probe_warning_for_useless_features_and_not_for_good_ones():
    x, y = _digits()
    torch.manual_seed(0)
    good = _net()  # an encoder that has seen digits: trained with labels on 1,000 of them
    from alsql.models.fit import fit

    def batches(epoch, xs=x[:1000], ys=y[:1000]):
        perm = torch.randperm(1000, generator=torch.Generator().manual_seed(epoch))
        for s in range(0, 1000, 64):
            yield xs[perm[s:s + 64]], ys[perm[s:s + 64]]

    fit(good, batches, None, TrainConfig(epochs=6, min_steps=0, patience=100, device="cpu"), 10, 16)
    zero = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in good.state_dict().items()}
    lab = torch.arange(1000, 1150)
    kw = dict(x=x[lab], make_net=_net, arms=("head",))
    bad = measure_choice(y[lab], 10, encoder_state=zero, encoder_name="encoder model 7", **kw)
    assert bad.warning is not None and bad.warning.startswith("encoder model 7's features score ")
    assert f"{bad.scores['head']:.2f}" in bad.warning and f"{bad.scores['probe_random']:.2f}" in bad.warning
    assert bad.scores["head"] <= bad.scores["probe_random"] and "train from scratch" in bad.warning
    ok = measure_choice(y[lab], 10, encoder_state=good.state_dict(), encoder_name="encoder model 8", **kw)
    assert ok.scores["head"] > ok.scores["probe_random"] and ok.warning is None
    assert probe_warning("e", 0.5, 0.5) is not None and probe_warning("e", 0.51, 0.5) is None
    assert probe_warning("e", 1.0, 1.0) is None  # a perfect probe: nothing to beat


# ------------------------------------------------------------------------------ through alsql train


@pytest.fixture
def pretrained(db_url, tmp_path):
    """150 digit scans, 20 labeled for training and 10 for evaluation, one encoder (both backends),
    pretrained for 30 steps: enough to learn (``alsql.models.pretrain.learned``), so --init auto starts from it."""
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, _ = make_digits_project(db_url, tmp_path / "scans", n=150, train=20, evaluate=10)
    art = str(tmp_path / "art")
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=30, batch_size=32, image_size=8,
                                                                    device="cpu"), grayscale=True, artifacts=art)
    yield engine, proj, art, out.model_id
    engine.dispose()


def _params(engine, model_id):
    with engine.connect() as conn:
        return conn.execute(select(model_versions.c.params, model_versions.c.metrics)
                            .where(model_versions.c.model_id == model_id)).one()


def test_auto_records_the_measured_choice(pretrained):
    from alsql.models.train import train_project

    engine, proj, art, enc = pretrained
    said: list[str] = []
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art, say=said.append)
    params, _metrics = _params(engine, mid)
    init = params["init"]
    choice = init["choice"]
    assert choice["mode"] in ARMS and set(choice["scores"]) == {"head", "finetune", "random", "probe_random"}
    assert all(0.0 <= s <= 1.0 for s in choice["scores"].values())
    assert choice["method"] == "3-fold stratified cross-validation on 20 labels"  # 10 evaluation items: too few
    assert init["why"].startswith("measured: ") and choice["why"] in init["why"]
    expect = {"head": "frozen", "finetune": "finetune", "random": None}[choice["mode"]]
    assert init["head"] == expect and init["init"] == ("random" if expect is None else "pretrained")
    assert choice["mode"] == pick_arm({a: choice["scores"][a] for a in ARMS})  # the rule on the recorded scores
    assert any(s.startswith(f"measured start: {choice['mode']} (") for s in said)


def test_explicit_head_and_init_win_over_measuring(pretrained):
    from alsql.models.train import train_project

    engine, proj, art, enc = pretrained
    frozen, _ = _params(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art,
                                              head="frozen"))
    assert frozen["init"]["head"] == "frozen" and frozen["init"]["why"] == "--head frozen"
    assert "choice" not in frozen["init"]
    rand, _ = _params(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art,
                                            init="random"))
    assert rand["init"]["init"] == "random" and "choice" not in rand["init"]
    pre, _ = _params(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art,
                                           init="pretrained"))
    assert pre["init"]["init"] == "pretrained" and pre["init"]["encoder_model_id"] == enc
    assert set(pre["init"]["choice"]["scores"]) == {"head", "finetune", "probe_random"}  # no random arm


def test_a_useless_encoder_is_named_in_a_warning(pretrained):
    from alsql.models.artifacts import load_object, save_object
    from alsql.models.train import train_project

    engine, proj, art, enc = pretrained
    with engine.connect() as conn:
        uri = conn.execute(select(model_versions.c.artifact_uri).where(model_versions.c.model_id == enc)).scalar()
    obj = load_object(uri)
    obj["state_dict"] = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    save_object(uri, obj)  # every weight zero: the features are constant
    said: list[str] = []
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art, init="pretrained",
                        say=said.append)
    params, metrics = _params(engine, mid)
    warning = params["init"]["choice"]["warning"]
    assert warning.startswith(f"encoder model {enc}'s features score ")
    assert "no better than a random network's" in warning
    assert warning in metrics["warnings"]
    with engine.connect() as conn:  # the encoder row itself is untouched
        status = conn.execute(select(model_versions.c.status).where(model_versions.c.model_id == enc)).scalar()
    assert status == "encoder"


class _Src:
    """A training source as ``alsql.models.train`` hands it: float batches, held in memory."""

    cache = True

    def __init__(self, x, y, bs=32):
        self.x, self.y, self.bs = x, y, bs

    def batches(self, epoch):
        for s in range(0, len(self.y), self.bs):
            yield self.x[s:s + self.bs], self.y[s:s + self.bs]


def test_sources_use_the_evaluation_set_and_over_the_cap_measure_on_a_sample(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import alsql.models.choose as choose
    from alsql.models.artifacts import artifact_uri, save_object

    x, y = _digits()
    torch.manual_seed(0)
    uri = artifact_uri(str(tmp_path), "enc.pt")
    save_object(uri, {"state_dict": _net().state_dict()})
    row = SimpleNamespace(model_id=5, artifact_uri=uri)
    train, held = _Src(x[:60], y[:60]), _Src(x[60:260], y[60:260])  # 200 held out: >= 10 of every class
    cfg = TrainConfig(epochs=1, min_steps=2, batch_size=32, device="cpu")
    c = choose.measure_sources(row, train, held, cfg, _net, 10)
    assert c.method.startswith("held out on the evaluation set (200 items")
    assert set(c.scores) == {"head", "finetune", "random", "probe_random"}
    few = choose.measure_sources(row, train, _Src(x[60:70], y[60:70]), cfg, _net, 10)
    assert few.method.endswith("-fold stratified cross-validation on 60 labels")  # 10 held out: too few
    # Over the cap, items in memory: every arm measured on a stratified sample of the cap's size.
    monkeypatch.setattr(choose, "COSTLY_MAX_LABELS", 50)  # 60 labels: over the cap
    over = choose.measure_sources(row, train, held, cfg, _net, 10, random_arm=False)
    assert set(over.scores) == {"head", "finetune", "probe_random"}
    assert over.method.endswith(", the arms trained on a stratified sample of 50 of the 60 labels (the costly arms' cap)")
    cv = choose.measure_sources(row, train, None, cfg, _net, 10)
    assert set(cv.scores) == {"head", "finetune", "random", "probe_random"}
    assert cv.method == ("3-fold stratified cross-validation on a stratified sample of 50 of the 60 labels (the "
                         "costly arms' cap)")
    # Labels not held in memory: the probes alone, from one pass over the items; the encoder is
    # left for random weights when its probe does not beat a random network's, else the rule.
    monkeypatch.setattr(choose, "COSTLY_MAX_LABELS", 400)  # 60 labels: under the cap again
    stream = _Src(x[:60], y[:60])
    stream.cache = False
    streamed = choose.measure_sources(row, stream, None, cfg, _net, 10)
    assert set(streamed.scores) == {"head", "probe_random"}
    assert "60 labels (fine-tuning is not cross-validated)" in streamed.why
    h, r = streamed.scores["head"], streamed.scores["probe_random"]
    assert streamed.mode == ("random" if h <= r else "head")  # 6 labels per class: the rule's frozen head
    # Under torchrun each process sees a share of the labels: nothing is measured, the rule decides.
    import alsql.models.fit as fitmod

    monkeypatch.setattr(fitmod, "distributed", lambda: (0, 2))
    assert choose.measure_sources(row, SimpleNamespace(cache=False), None, cfg, _net, 10) is None


def test_stratified_sample_keeps_class_shares_and_every_class():
    from alsql.models.choose import stratified_sample

    y = np.repeat([0, 1, 2], [700, 280, 20])
    keep = stratified_sample(y, 100, seed=3)
    assert len(keep) == 100 and np.all(np.diff(keep) > 0)  # sorted, no repeats
    assert np.bincount(y[keep]).tolist() == [70, 28, 2]
    assert np.array_equal(keep, stratified_sample(y, 100, seed=3))
    assert not np.array_equal(keep, stratified_sample(y, 100, seed=4))
    rare = np.repeat([0, 1], [999, 1])
    assert np.bincount(rare[stratified_sample(rare, 10)]).tolist() == [9, 1]  # a class of one is kept


def test_over_the_cap_the_choice_is_for_all_labels():
    """A choice measured on a sample over the cap decides for the labels the run has: 20 labels per
    class in all is past the switch to the network, though the sample holds 5 per class."""
    x, y = _digits()
    torch.manual_seed(0)
    enc = _net().state_dict()
    c = measure_choice(y[:200], 10, x=x[:200], make_net=_net, encoder_state=enc, cfg=TINY, seed=1,
                       max_costly_labels=50)
    assert c.method.startswith("5-fold stratified cross-validation on a stratified sample of 50 of the 200 labels")
    assert set(c.scores) == {"head", "finetune", "random", "probe_random"}
    head_wins = all(c.scores["head"] >= c.scores[a] + 0.01 for a in ("finetune", "random"))
    assert (c.mode == "head") == head_wins  # 20 per class: the network wins ties (SWITCH_PER_CLASS)


def test_unmeasured_costly_arms_follow_the_probes():
    """When fine-tuning and random weights were not trained, the probes decide encoder or none:
    a probe no better than a random network's gives random weights; else the rule under the cap
    (a head under 15 labels per class, fine-tuning from there) and fine-tuning over it."""
    from alsql.models.choose import _decide

    weak = {"head": 0.40, "probe_random": 0.55}
    good = {"head": 0.80, "probe_random": 0.55}
    assert _decide(weak, ["head"], ARMS, 100, 400, True, 3)[0] == "random"
    assert _decide(good, ["head"], ARMS, 30, 400, True, 3)[0] == "head"  # 10 per class
    assert _decide(good, ["head"], ARMS, 300, 400, True, 3)[0] == "finetune"  # 100 per class
    assert _decide(good, ["head"], ARMS, 900, 400, True, 3)[0] == "finetune"
    assert _decide(weak, ["head"], ("head", "finetune"), 100, 400, True, 3)[0] != "random"  # --init pretrained
    mode, why = _decide(weak, ["head"], ARMS, 100, 400, True, 3)
    assert "does not beat a random network's 0.550" in why


def test_an_encoder_that_did_not_learn_is_left_under_init_auto(db_url, tmp_path):
    """Pretraining of 5 steps leaves the contrastive loss near chance: --init auto trains from random
    weights and says why; --init pretrained still starts from it, with that reason as a warning."""
    from alsql.models.encoders import encoder_learned
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project
    from alsql.models.train import train_project

    engine, proj, _ = make_digits_project(db_url, tmp_path / "scans", n=150, train=20, evaluate=10)
    art = str(tmp_path / "art")
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=0, batch_size=32, image_size=8,
                                                                    device="cpu"), grayscale=True, artifacts=art)
    assert out.steps == 5
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == out.model_id)).one()
    ok, why = encoder_learned(row)
    assert ok is False and why.startswith(f"encoder model {out.model_id} did not learn: its contrastive loss ended at ")
    assert "of chance (4.067 for its last steps' batches of 32, 32, 32, 32, 22)" in why  # mean log(2B - 1)
    said: list[str] = []
    auto, _ = _params(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art,
                                            say=said.append))
    assert auto["init"]["init"] == "random" and auto["init"]["encoder_model_id"] is None
    assert auto["init"]["why"] == f"--init auto: random weights, {why}" and "choice" not in auto["init"]
    assert auto["init"]["why"] in said
    pre, metrics = _params(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art,
                                                 init="pretrained"))
    assert pre["init"]["init"] == "pretrained" and pre["init"]["encoder_model_id"] == out.model_id
    assert why in metrics["warnings"]
    # the loop's cold start does not read its embeddings either (a project with no model yet)
    from alsql.pipelines.loop import first_strategy

    fresh, proj2, _ = make_digits_project(db_url, tmp_path / "scans2", n=150, train=0, evaluate=0, name="fresh")
    out2 = pretrain_project(fresh, proj2.project_id, PretrainConfig(epochs=1, min_steps=0, batch_size=32,
                                                                     image_size=8, device="cpu"),
                            grayscale=True, artifacts=art)
    said.clear()
    assert first_strategy(fresh, proj2.project_id, "margin", said.append) == "random"
    assert said == [f"cold start: random picks, encoder model {out2.model_id} did not learn: " + said[0].split(
        " did not learn: ", 1)[1]] and "of chance" in said[0]
    engine.dispose()


def test_learned_against_chance():
    from alsql.models.pretrain import LEARNED_BELOW, chance_loss, last_point_batches, learned

    assert chance_loss(64) == pytest.approx(math.log(127))
    assert chance_loss([64, 22]) == pytest.approx((math.log(127) + math.log(43)) / 2)
    # the curve's last point: every 10 steps and at an epoch's end, whose batch holds what is left
    assert last_point_batches(150, 64, 3) == [64, 64, 22] and last_point_batches(150, 32, 28) == [32, 32, 32]
    assert last_point_batches(100_000, 256, 391 * 4) == [160] and last_point_batches(1000, 128, 22, world_size=2) == [128, 128]
    assert learned(0.9 * chance_loss(64), 64)[0] is True and learned(0.91 * chance_loss(64), 64)[0] is False
    assert learned(None, 64) == (None, "no final loss recorded") and LEARNED_BELOW == 0.9
    with pytest.raises(AlsqlError, match="batch size 1: expected at least 2"):
        chance_loss(1)
