"""BALD's MC-dropout draws are seeded from the model and the batch: two scorings agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import delete, select

from alsql.db import write_transaction
from alsql.schema import embeddings, predictions
from tests.test_train_infer import QUICK, make_digits_project


def _bald(engine, model_id):
    with engine.connect() as conn:
        rows = conn.execute(select(predictions.c.item_id, predictions.c.bald)
                            .where(predictions.c.model_id == model_id).order_by(predictions.c.item_id)).all()
    return [i for i, _ in rows], np.array([b for _, b in rows], dtype=np.float64)


@pytest.mark.sqlite
def test_two_scorings_of_a_model_give_identical_bald(sqlite_url, tmp_path):
    from alsql.models.infer import infer_project
    from alsql.models.train import train_project

    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=80, train=40, evaluate=0)
    mid = train_project(engine, proj.project_id, QUICK, grayscale=True, artifacts=str(tmp_path / "art"))
    infer_project(engine, proj.project_id, mid, bald=6, batch_size=32, device="cpu", map_method=None)
    ids1, first = _bald(engine, mid)
    torch.rand(1000)  # the process's RNG has moved on, as it does between rounds
    with write_transaction(engine) as conn:
        conn.execute(delete(predictions).where(predictions.c.model_id == mid))
        conn.execute(delete(embeddings).where(embeddings.c.model_id == mid))
    infer_project(engine, proj.project_id, mid, bald=6, batch_size=32, device="cpu", map_method=None)
    ids2, second = _bald(engine, mid)
    assert ids1 == ids2 and len(ids1) == 80
    assert np.isfinite(first).all() and first.max() > 0  # real MC-dropout spread, not all zero
    np.testing.assert_array_equal(first, second)
    engine.dispose()


def test_predict_batch_seeded_draws_repeat_and_leave_the_global_rng_alone():
    from alsql.models.networks import build_network
    from alsql.models.predict import mc_seed_for, predict_batch

    torch.manual_seed(0)
    net = build_network("cnn", 10, in_channels=1)
    x = torch.rand(16, 1, 8, 8)
    seed = mc_seed_for(3, 17)
    state = torch.get_rng_state()
    a = predict_batch(net, x, 8, mc_seed=seed)["bald"]
    assert torch.equal(state, torch.get_rng_state())  # the draws came from a forked RNG
    b = predict_batch(net, x, 8, mc_seed=seed)["bald"]
    c = predict_batch(net, x, 8, mc_seed=mc_seed_for(4, 17))["bald"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # another model (or batch) draws other masks
    assert mc_seed_for(3, 17) == mc_seed_for(3, 17) != mc_seed_for(3, 18)
