"""A round's model (``alsql.models.heads.train_round_model``) on an ``alsql pretrain`` encoder with
stored vectors follows the measured head-or-fine-tune choice (``alsql.models.choose``), measured
once: a head on the stored vectors when the measurement keeps the head, the network otherwise;
the fixed rule only where nothing can be measured (both backends)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from sqlalchemy import func, select

from alsql.models.fit import TrainConfig
from alsql.schema import embeddings, model_versions
from tests.test_train_infer import make_digits_project

CFG = TrainConfig(epochs=3, min_steps=40, batch_size=16, patience=100, image_size=8, device="cpu")


@pytest.fixture
def pretrained(db_url, tmp_path):
    """150 digit scans, 80 labeled for training (8 per class) and 10 for evaluation, one
    ``alsql pretrain`` encoder (architecture ``cnn+simclr``)."""
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, oracle = make_digits_project(db_url, tmp_path / "scans", n=150, train=80, evaluate=10)
    art = str(tmp_path / "art")
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=30, batch_size=32, image_size=8,
                                                                    device="cpu"), grayscale=True, artifacts=art)
    yield engine, proj, art, out.model_id
    engine.dispose()


def _set_encoder_weights(engine, enc: int, make) -> None:
    """Replace the encoder's stored weights by ``make(state_dict) -> state_dict``."""
    from alsql.models.artifacts import load_object, save_object

    with engine.connect() as conn:
        uri = conn.execute(select(model_versions.c.artifact_uri).where(model_versions.c.model_id == enc)).scalar()
    obj = load_object(uri)
    obj["state_dict"] = make(obj["state_dict"])
    save_object(uri, obj)


def _supervised(state: dict) -> dict:
    """A network of the encoder's architecture trained on all 1,797 labeled digits (the scans are
    the first 150 of them): its penultimate features separate the classes almost perfectly."""
    from sklearn.datasets import load_digits

    from alsql.models.networks import build_network

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    net = build_network("cnn", 10, 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _step in range(300):
        j = torch.randint(0, len(y), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net(x[j]), y[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
    own = net.state_dict()
    return {k: own[k].detach().clone() if k in own and own[k].shape == v.shape else v for k, v in state.items()}


def _zeros(state: dict) -> dict:
    return {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in state.items()}


def _embed(engine, proj, enc: int) -> None:
    from alsql.models.embed import embed_project

    embed_project(engine, proj.project_id, "pretrained", device="cpu", map_method="pca", say=lambda _m: None)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(embeddings).where(embeddings.c.model_id == enc)).scalar()
    assert n == 150  # the pool's vectors are the encoder's own


def _row(engine, model_id: int):
    with engine.connect() as conn:
        return conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()


def test_perfect_features_measured_give_a_head_on_the_stored_vectors(pretrained):
    from alsql.models.heads import train_round_model

    engine, proj, art, enc = pretrained
    _set_encoder_weights(engine, enc, _supervised)
    _embed(engine, proj, enc)
    said: list[str] = []
    mid = train_round_model(engine, proj.project_id, CFG, grayscale=True, artifacts=art, say=said.append)
    row = _row(engine, mid)
    assert row.architecture == "head:linear" and row.params["encoder_model_id"] == enc
    init = row.params["init"]
    choice = init["choice"]
    assert choice["mode"] == "head" and set(choice["scores"]) == {"head", "finetune", "random", "probe_random"}
    assert choice["scores"]["head"] >= 0.9  # the frozen features are (nearly) perfect
    assert init["head"] == "frozen" and init["why"] == f"measured: {choice['why']}"
    assert sum(s.startswith("measured start: head (") for s in said) == 1  # measured once, said as alsql train does
    assert any(s.startswith("measured: ") and f"head on the stored vectors of encoder {enc}" in s for s in said)
    assert row.metrics["balanced_accuracy"] is not None

    # Labels not held in memory: only the probes are measured (one pass over the items); the
    # encoder's beats the random network's, so the rule decides (8 per class: the head).
    fixed = _row(engine, train_round_model(engine, proj.project_id, dataclasses.replace(CFG, cache_mb=0),
                                           grayscale=True, artifacts=art))
    assert fixed.architecture == "head:linear"
    assert set(fixed.params["init"]["choice"]["scores"]) == {"head", "probe_random"}
    assert "fine-tuning is not cross-validated" in fixed.params["init"]["why"]
    assert "under 15 per class" in fixed.params["init"]["why"]


def test_useless_features_measured_give_the_network(pretrained):
    from alsql.models.choose import pick_arm
    from alsql.models.heads import train_round_model

    engine, proj, art, enc = pretrained
    _set_encoder_weights(engine, enc, _zeros)  # every weight zero: constant features
    _embed(engine, proj, enc)
    said: list[str] = []
    mid = train_round_model(engine, proj.project_id, CFG, grayscale=True, artifacts=art, say=said.append)
    row = _row(engine, mid)
    assert row.architecture == "cnn"  # the network, as measured
    init = row.params["init"]
    choice = init["choice"]
    assert choice["mode"] in ("finetune", "random") and choice["mode"] == pick_arm(
        {a: choice["scores"][a] for a in ("head", "finetune", "random")})
    assert choice["scores"]["head"] <= 0.15  # a probe on constant features predicts one class
    assert init["why"] == f"measured: {choice['why']}"
    assert init["head"] == {"finetune": "finetune", "random": None}[choice["mode"]]
    assert sum(s.startswith("measured start: ") for s in said) == 1
    assert not any("head on the stored vectors" in s for s in said)
