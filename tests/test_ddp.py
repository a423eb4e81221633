"""DDP with two CPU processes (gloo, file:// rendezvous): disjoint data, identical weights."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp
from sqlalchemy import func, select

from alsql.schema import model_versions
from alsql.schema.views import training_set
from tests.test_train_infer import make_digits_project


def _worker(rank: int, world: int, url: str, tmp: str) -> None:
    import torch.distributed as dist

    from alsql.db import make_engine
    from alsql.loaders.datasets import SqlImageDataset
    from alsql.models.fit import TrainConfig
    from alsql.models.train import train_and_record

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        engine = make_engine(url)
        ds = SqlImageDataset(url, 1, view="training_set", seed=0, shuffle=True, image_size=8, grayscale=True)
        seen = {}
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            seen[epoch] = [int(i) for _, _, i in ds]
        cfg = TrainConfig(epochs=3, min_steps=1, batch_size=8, patience=100, image_size=8, device="cpu")
        out = train_and_record(engine, 1, cfg, grayscale=True, artifacts=f"{tmp}/art")
        torch.save(out.fit.state_dict, f"{tmp}/state-{rank}.pt")
        with open(f"{tmp}/seen-{rank}.json", "w") as fh:
            json.dump({"seen": seen, "model_id": out.model_id}, fh)
        engine.dispose()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.sqlite
def test_ddp_two_cpu_processes(sqlite_url, tmp_path):
    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=120, train=70, evaluate=20)
    assert proj.project_id == 1
    mp.spawn(_worker, args=(2, sqlite_url, str(tmp_path)), nprocs=2, join=True)
    runs = [json.loads((tmp_path / f"seen-{r}.json").read_text()) for r in (0, 1)]
    with engine.connect() as conn:
        train_ids = set(conn.execute(select(training_set.c.item_id)).scalars())
        n_models = conn.execute(select(func.count()).select_from(model_versions)).scalar()
        params = conn.execute(select(model_versions.c.params)).scalar()
    assert params["world_size"] == 2
    for epoch in ("0", "1"):
        a, b = (set(r["seen"][epoch]) for r in runs)
        assert not a & b, "ranks read overlapping items"
        assert a | b == train_ids, "together the ranks read every training item"
        assert len(runs[0]["seen"][epoch]) + len(runs[1]["seen"][epoch]) == len(train_ids)  # once each
    assert runs[0]["model_id"] == runs[1]["model_id"] and n_models == 1  # rank 0 records one model
    s0 = torch.load(tmp_path / "state-0.pt")
    s1 = torch.load(tmp_path / "state-1.pt")
    assert s0.keys() == s1.keys()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    engine.dispose()
