"""Datasets over the views: exactly once per epoch across ranks x workers, order, bad blobs."""

from __future__ import annotations

import io
import time
import uuid

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import insert, select
from torch.utils.data import DataLoader

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders import fetch
from alsql.loaders.datasets import SqlImageDataset, SqlViewDataset, pack_f16, shuffled, unpack_f16
from alsql.loaders.pager import iter_rows
from alsql.schema import items, model_versions, predictions
from alsql.stores import BlobMissing, path_to_uri, register_store


def _png(value: int, size: int = 4) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (size, size), color=value % 256).save(buf, format="PNG")
    return buf.getvalue()


def add_image_items(engine, folder, n: int, project_id: int | None = None) -> list[int]:
    """``n`` real PNG files, one item each; labelled ``i % 5`` in ``project_id`` if given."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"{i:06d}.png"
        path.write_bytes(_png(i))
        rows.append({"uri": path_to_uri(path), "sha256": uuid.uuid4().hex * 2, "status": "ok", "width": 4, "height": 4})
    with write_transaction(engine) as conn:
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True), rows).scalars())
        if project_id is not None:
            insert_annotations(conn, [
                {"project_id": project_id, "item_id": i, "class_id": k % 5} for k, i in enumerate(ids)
            ])
    return ids


def _epoch(url, pid, epoch, **kw):
    """Item ids read by 2 simulated ranks x 3 DataLoader workers: one list per rank."""
    per_rank = []
    for rank in range(2):
        ds = SqlImageDataset(url, pid, seed=11, chunk_rows=97, shuffle_buffer=64, rank=rank, world_size=2, **kw)
        ds.set_epoch(epoch)
        ids = []
        for x, labels, item_ids in DataLoader(ds, batch_size=128, num_workers=3):
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 4, 4)
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
            ids.extend(item_ids.tolist())
            labels_by_id.update(zip(item_ids.tolist(), labels.tolist()))
        per_rank.append(ids)
    return per_rank


labels_by_id: dict[int, int] = {}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_two_ranks_three_workers_read_each_item_once(db_url, engine, project, tmp_path):
    pid = project.project_id
    ids = add_image_items(engine, tmp_path / "img", 10_000, pid)
    labels_by_id.clear()
    e0 = _epoch(db_url, pid, 0)
    everything = e0[0] + e0[1]
    assert len(everything) == 10_000 and sorted(everything) == sorted(ids)
    assert not set(e0[0]) & set(e0[1])
    assert abs(len(e0[0]) - len(e0[1])) < 2_000  # 104 chunks dealt evenly to 6 consumers
    assert labels_by_id == {i: k % 5 for k, i in enumerate(ids)}
    assert _epoch(db_url, pid, 0) == e0  # same seed and epoch: same order
    e1 = _epoch(db_url, pid, 1)
    assert sorted(e1[0] + e1[1]) == sorted(ids)
    assert e1 != e0 and e1[0] != e0[0]


def test_views_and_inference_queue(db_url, engine, project, tmp_path):
    pid = project.project_id
    labeled = add_image_items(engine, tmp_path / "a", 30, pid)
    pool = add_image_items(engine, tmp_path / "b", 20)
    with write_transaction(engine) as conn:
        mid = conn.execute(
            insert(model_versions).values(project_id=pid, architecture="cnn").returning(model_versions.c.model_id)
        ).scalar_one()
        conn.execute(insert(predictions), [
            {"model_id": mid, "item_id": i, "class_id": 0, "confidence": 0.5, "margin": 0.1, "entropy": 1.0}
            for i in pool[:5]
        ])
    train = list(SqlViewDataset(db_url, pid, chunk_rows=7, shuffle=False))
    assert [r[0] for r in train] == labeled  # unshuffled: key order
    unl = list(SqlImageDataset(db_url, pid, view="unlabeled_pool", chunk_rows=7))
    assert sorted(r[2] for r in unl) == pool and {r[1] for r in unl} == {-1}
    queue = list(SqlViewDataset(db_url, pid, view="inference_queue", model_id=mid, chunk_rows=8))
    assert sorted(r[0] for r in queue) == sorted(labeled + pool[5:])
    assert SqlViewDataset(db_url, pid, view="inference_queue", model_id=mid).count() == 45
    assert SqlViewDataset(db_url, pid).count() == 30
    with pytest.raises(AlsqlError, match="needs model_id"):
        SqlViewDataset(db_url, pid, view="inference_queue")
    with pytest.raises(AlsqlError, match="view 'nope'"):
        SqlViewDataset(db_url, pid, view="nope")
    with pytest.raises(AlsqlError, match="project 999"):
        SqlViewDataset(db_url, 999)


def test_pager_pages_and_bounds(db_url, engine, project, tmp_path):
    ids = add_image_items(engine, tmp_path / "a", 25, project.project_id)
    rows = list(iter_rows(engine, project.project_id, "training_set", after=ids[3], upto=ids[20], page_rows=4))
    assert [r[0] for r in rows] == ids[4:21]
    with pytest.raises(AlsqlError, match="page_rows 0"):
        list(iter_rows(engine, project.project_id, "training_set", after=0, page_rows=0))


def test_missing_and_corrupt_blobs_are_recorded_and_skipped(db_url, engine, project, tmp_path):
    pid = project.project_id
    ids = add_image_items(engine, tmp_path / "a", 12, pid)
    (tmp_path / "a" / "000003.png").unlink()
    (tmp_path / "a" / "000007.png").write_bytes(b"not a png at all")
    got = sorted(item for _x, _y, item in SqlImageDataset(db_url, pid, image_size=8, grayscale=True))
    assert got == [i for k, i in enumerate(ids) if k not in (3, 7)]
    with engine.connect() as conn:
        status = dict(conn.execute(select(items.c.item_id, items.c.status)).all())
    assert status[ids[3]] == "missing" and status[ids[7]] == "corrupt"
    assert sum(s == "ok" for s in status.values()) == 10
    x, _, _ = next(iter(SqlImageDataset(db_url, pid, image_size=8, grayscale=True)))
    assert x.shape == (1, 8, 8)


class FlakyStore:
    """Serves ``flaky://N``: the first two reads of each object fail with a timeout."""

    def __init__(self):
        self.calls: dict[str, int] = {}

    def open(self, uri):
        self.calls[uri] = self.calls.get(uri, 0) + 1
        if uri.endswith("/gone"):
            raise BlobMissing(uri)
        if self.calls[uri] <= 2:
            raise TimeoutError("slow")
        time.sleep(0.001 * (hash(uri) % 5))
        return uri.encode()


def test_fetch_retries_in_order_and_reports_missing():
    store = FlakyStore()
    register_store("flaky", lambda: store)
    rows = [(i, f"flaky://x/{i}", 0) for i in range(40)] + [(99, "flaky://x/gone", 0)]
    bad = []
    out = list(fetch.fetch_decoded(rows, bytes.decode, workers=8, backoff=0.001, on_bad=lambda *a: bad.append(a)))
    assert [r[0] for r, _ in out] == list(range(40))
    assert [v for _, v in out] == [f"flaky://x/{i}" for i in range(40)]
    assert bad == [(99, "missing", "blob missing: flaky://x/gone")]
    with pytest.raises(AlsqlError, match="still failing after 1 retries"):
        list(fetch.fetch_decoded([(1, "flaky://y/1", 0)], bytes.decode, workers=1, retries=1, backoff=0.001))


def test_shuffle_buffer_is_a_permutation_and_f16_round_trips():
    rng = np.random.default_rng(0)
    out = list(shuffled(iter(range(1000)), 50, rng))
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    a = np.array([[0.25, 0.5, 1.0]], dtype=np.float32)
    assert np.array_equal(unpack_f16(pack_f16(a)), a.ravel().astype(np.float16))
    assert unpack_f16(None) is None


def test_page_query_is_a_keyset_query():
    from sqlalchemy.dialects import postgresql, sqlite

    from alsql.loaders.pager import page_query

    pg = str(page_query("training_set", bounded=True).compile(dialect=postgresql.dialect()))
    assert "training_set.item_id > %(last)s AND training_set.item_id <= %(hi)s" in pg
    assert "ORDER BY training_set.item_id" in pg and "LIMIT %(n)s" in pg and "OFFSET" not in pg
    q = page_query("inference_queue", bounded=False).compile(dialect=sqlite.dialect())
    assert "NOT (EXISTS" in q.string and "predictions.model_id = ?" in q.string
    assert q.string.endswith("LIMIT ? OFFSET ?") and q.params[q.positiontup[-1]] == 0  # SQLite's compiler adds OFFSET 0
