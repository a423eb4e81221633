"""Pretraining under DDP: two CPU ranks (gloo) x two DataLoader workers read the pool exactly once per epoch."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp
from sqlalchemy import select

from alsql.schema import items, model_versions
from tests.test_train_infer import make_digits_project


def _worker(rank: int, world: int, url: str, tmp: str) -> None:
    import torch.distributed as dist

    from alsql.db import make_engine
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    torch.set_num_threads(1)
    # A torchrun rank is a fresh interpreter whose DataLoader forks its workers; mp.spawn's
    # children would spawn them instead (inheriting the start method), so ask for fork here.
    mp.set_start_method("fork", force=True)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        engine = make_engine(url)
        seen: dict[int, list[int]] = {}
        cfg = PretrainConfig(epochs=2, min_steps=0, batch_size=16, image_size=8, device="cpu", num_workers=2,
                             log_every=1)
        out = pretrain_project(engine, 1, cfg, grayscale=True, artifacts=f"{tmp}/art",
                               on_ids=lambda e, ids: seen.setdefault(e, []).extend(ids))
        with open(f"{tmp}/seen-{rank}.json", "w") as fh:
            json.dump({"seen": seen, "model_id": out.model_id, "steps": out.steps, "items": out.items_seen}, fh)
        engine.dispose()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.sqlite
def test_pretrain_reads_each_item_once_per_epoch_across_ranks_and_workers(sqlite_url, tmp_path):
    engine, proj, _ = make_digits_project(sqlite_url, tmp_path / "s", n=150, train=20, evaluate=10)
    assert proj.project_id == 1
    mp.spawn(_worker, args=(2, sqlite_url, str(tmp_path)), nprocs=2, join=True)
    runs = [json.loads((tmp_path / f"seen-{r}.json").read_text()) for r in (0, 1)]
    with engine.connect() as conn:
        ok = sorted(conn.execute(select(items.c.item_id).where(items.c.status == "ok")).scalars())
        rows = conn.execute(select(model_versions)).all()
    assert len(ok) == 150
    for epoch in ("0", "1"):
        a, b = runs[0]["seen"][epoch], runs[1]["seen"][epoch]
        assert a and b and not set(a) & set(b), "ranks read overlapping items"
        assert sorted(a + b) == ok, "together the 2 ranks x 2 workers read every item exactly once"
    assert runs[0]["model_id"] == runs[1]["model_id"] and len(rows) == 1  # rank 0 records one encoder
    assert runs[0]["steps"] == runs[1]["steps"]  # the step count agrees after every epoch
    assert runs[0]["items"] == runs[1]["items"] == 300  # items trained on, summed over ranks
    row = rows[0]
    assert row.status == "encoder" and row.params["world_size"] == 2 and row.params["items_seen"] == 300
    engine.dispose()
