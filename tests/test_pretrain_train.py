"""``alsql train`` from a pretrained encoder: weights loaded, the head rule, the init recorded."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import func, select

from alsql.errors import AlsqlError
from alsql.models.encoders import FROZEN_BELOW_PER_CLASS, choose_head
from alsql.models.fit import TrainConfig
from alsql.models.pretrain import PretrainConfig, head_parameter
from alsql.schema import embeddings, model_versions
from tests.test_train_infer import make_digits_project

QUICK = TrainConfig(epochs=2, min_steps=4, batch_size=32, patience=100, image_size=8, device="cpu")


@pytest.fixture
def pretrained(sqlite_url, tmp_path):
    """150 digit scans, 20 labeled for training (2 per class) and 10 for evaluation, one encoder."""
    from alsql.models.pretrain_pool import pretrain_project

    engine, proj, oracle = make_digits_project(sqlite_url, tmp_path / "scans", n=150, train=20, evaluate=10)
    art = str(tmp_path / "art")
    out = pretrain_project(engine, proj.project_id, PretrainConfig(epochs=1, min_steps=30, batch_size=32, image_size=8,
                                                                    device="cpu"), grayscale=True, artifacts=art)
    yield engine, proj, oracle, art, out.model_id
    engine.dispose()


def _state(engine, model_id):
    from alsql.models.artifacts import load_object

    with engine.connect() as conn:
        uri = conn.execute(select(model_versions.c.artifact_uri).where(model_versions.c.model_id == model_id)).scalar()
    return load_object(uri)["state_dict"]


def _row(engine, model_id):
    with engine.connect() as conn:
        return conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()


def test_head_rule_on_labels_per_class():
    assert choose_head("auto", 10 * (FROZEN_BELOW_PER_CLASS - 1), 10)[0] == "frozen"
    assert choose_head("auto", 10 * FROZEN_BELOW_PER_CLASS, 10)[0] == "finetune"
    assert choose_head("finetune", 5, 10)[0] == "finetune"
    with pytest.raises(AlsqlError, match="--head 'linear'"):
        choose_head("linear", 5, 10)


def test_start_loads_the_encoder_weights_before_training(pretrained):
    from alsql.models.encoders import encoder_layout
    from alsql.models.networks import build_network
    from alsql.models.train import _start

    engine, proj, _, _, enc = pretrained
    net = build_network("cnn", 10, 1, encoder_layout(_row(engine, enc)))  # the layout it was pretrained with
    start = _start(engine, proj, net, "cnn", "auto", "finetune", None, 20, 10)
    assert start["init"] == "pretrained" and start["encoder_model_id"] == enc and start["head"] == "finetune"
    encoder = _state(engine, enc)
    own = net.state_dict()
    loaded = [k for k in own if not head_parameter(k)]
    assert loaded and all(torch.equal(own[k], encoder[k]) for k in loaded)
    assert all(p.requires_grad for p in net.parameters())  # fine-tuning trains everything


def test_frozen_head_leaves_the_encoder_unchanged_and_infer_writes_its_features(pretrained):
    from alsql.models.infer import infer_project
    from alsql.models.train import train_project

    engine, proj, _, art, enc = pretrained
    said: list[str] = []
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art, say=said.append,
                        head="frozen")  # --head auto measures the choice: tests/test_choose.py
    row = _row(engine, mid)
    assert row.status == "ready" and row.architecture == "cnn"
    init = row.params["init"]
    assert init["init"] == "pretrained" and init["encoder_model_id"] == enc and init["head"] == "frozen"
    assert init["why"] == "--head frozen" and any(f"encoder model {enc}" in s for s in said)
    model, encoder = _state(engine, mid), _state(engine, enc)
    body = [k for k in model if not head_parameter(k)]
    assert body and all(torch.equal(model[k], encoder[k]) for k in body)  # weights and batch-norm statistics
    assert not torch.equal(model["fc.weight"], encoder["fc.weight"])  # the head was trained
    rep = infer_project(engine, proj.project_id, mid, batch_size=64, map_method=None)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(embeddings).where(embeddings.c.model_id == mid)).scalar()
    assert rep.items == n == 150  # the map and the strategies read the encoder's feature space
    from alsql.models.pool import latest_model_id

    with engine.connect() as conn:
        assert latest_model_id(conn, proj.project_id) == mid


def test_finetune_and_random_inits_are_recorded(pretrained):
    from alsql.models.train import train_project

    engine, proj, _, art, enc = pretrained
    fine = _row(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art, head="finetune"))
    assert fine.params["init"]["head"] == "finetune" and fine.params["init"]["encoder_model_id"] == enc
    assert not torch.equal(_state(engine, fine.model_id)["features.0.weight"], _state(engine, enc)["features.0.weight"])
    rand = _row(engine, train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=art, init="random"))
    assert rand.params["init"] == {"init": "random", "encoder_model_id": None, "head": None, "why": "--init random"}


def test_init_pretrained_without_an_encoder_is_refused(sqlite_url, tmp_path):
    from alsql.models.train import train_project

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "scans", n=60, train=20, evaluate=0)
    with pytest.raises(AlsqlError, match=r"--init pretrained: project 1 has no cnn\+simclr encoder.*alsql pretrain"):
        train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp_path / "a"), init="pretrained")
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp_path / "a"))
    assert _row(engine, mid).params["init"]["init"] == "random"  # auto without an encoder
    engine.dispose()


def test_auto_falls_back_to_random_when_the_encoder_does_not_fit(pretrained):
    from alsql.models.train import train_project

    engine, proj, _, art, enc = pretrained
    said: list[str] = []
    # The encoder read one channel; a colour model cannot start from it.
    mid = train_project(engine, proj.project_id, QUICK, grayscale=False, artifacts=art, say=said.append)
    init = _row(engine, mid).params["init"]
    assert init["init"] == "random" and "does not fit" in init["why"] and any("does not fit" in s for s in said)
    with pytest.raises(AlsqlError, match=f"encoder model {enc} .* does not fit"):
        train_project(engine, proj.project_id, QUICK, grayscale=False, artifacts=art, init="pretrained")
