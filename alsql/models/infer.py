"""``alsql infer``: score every ok item of a project that the model has not scored yet.

Reads the ``inference_queue`` view (ok items without a prediction of the model)
through ``SqlImageDataset``, so a re-run after a crash finishes the rest. Per item it
writes, through ``PredictionWriter``:

- ``predictions``: class_id, confidence, margin, entropy, probs (float16), and bald
  when ``bald`` > 0 MC-dropout passes are asked for;
- ``embeddings``: the penultimate-layer vector (float16), with ``x, y`` NULL.

Nothing is held back: both writers flush every ``buffer_rows`` items and at least every
``flush_seconds`` (embeddings first, then predictions, so an item with a prediction
always has its embedding), so a crash loses at most a few seconds of work. After the
queue is scored, ``alsql.models.maps.compute_map`` gives the new embeddings their 2-D
map coordinates (``map_method``: ``tsne``, the default, or ``pca``; None skips it, as
the chunk-claiming workers do until the last chunk is done). Memory is bounded by one
batch plus the writers' buffers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from alsql.catalog import get_project
from alsql.errors import AlsqlError
from alsql.loaders.writer import FLUSH_SECONDS
from alsql.models.artifacts import load_model
from alsql.models.fit import resolve_device
from alsql.models.heads import is_head
from alsql.models.maps import MAP_SAMPLE, MapReport, compute_map
from alsql.models.pool import require_model
from alsql.models.predict import mc_seed_for, predict_batch, write_scored
from alsql.models.train import dataset_url

__all__ = ["InferReport", "infer_project", "one_class_check", "score_batches", "cpu_cores", "share_cores",
           "MAP_SAMPLE", "BUFFER_ROWS"]

BUFFER_ROWS = 50_000


def one_class_check(engine: Engine, model_id: int, class_names) -> str | None:
    """A warning line when the model predicts one class for ``ONE_CLASS_SHARE`` (95 %) or more
    of the items it has scored (``predictions`` of ``model_id``, a scan of its key range); else None."""
    from sqlalchemy import func, select

    from alsql.models.metrics import ONE_CLASS_SHARE, one_class_warning
    from alsql.schema import predictions

    with engine.connect() as conn:
        rows = conn.execute(select(predictions.c.class_id, func.count()).where(predictions.c.model_id == model_id)
                            .group_by(predictions.c.class_id)).all()
    total = sum(int(n) for _c, n in rows)
    if not total:
        return None
    cid, n = max(rows, key=lambda r: int(r[1]))
    if n / total < ONE_CLASS_SHARE:
        return None
    name = class_names[int(cid)] if 0 <= int(cid) < len(class_names) else f"class id {cid}"
    return one_class_warning(name, n / total, total, f"the scored pool of model {model_id}")


@dataclass
class InferReport:
    model_id: int
    items: int = 0
    bald: bool = False
    map: MapReport | None = None


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def share_cores(processes: int, cores: int | None = None) -> int:
    """Intra-op threads for one of ``processes`` busy processes sharing ``cores`` (at least 1).

    More threads than cores make PyTorch's threads wait on each other (each one spins at
    its barriers while the core it needs runs another process), so the forward pass gets
    slower, not faster: processes that run side by side divide the cores instead.
    """
    cores = cpu_cores() if cores is None else cores
    return max(1, cores // max(1, processes))


def score_batches(engine: Engine, model_id: int, net, batches, device, *, bald: int = 0, amp: bool = False,
                  buffer_rows: int = BUFFER_ROWS, flush_seconds: float = FLUSH_SECONDS, analyze: bool = True) -> int:
    """Score ``(x, _y, ids)`` batches and write predictions and embeddings; return the items written.

    ``analyze=False`` leaves the statistics refresh to the caller (one per job, not per chunk).
    """
    from alsql.loaders.datasets import as_float
    from alsql.loaders.writer import PredictionWriter

    written = 0
    last = time.monotonic()
    # Both writers flush on the same batch (same row counts; time is checked here): the
    # embeddings writer is flushed first, every time, so a crash never leaves a prediction
    # without its embedding (the queue is "items without a prediction").
    with PredictionWriter(engine, model_id, kind="embeddings", buffer_rows=buffer_rows, flush_seconds=None,
                          analyze=analyze) as ew, \
            PredictionWriter(engine, model_id, kind="predictions", buffer_rows=buffer_rows, flush_seconds=None,
                             analyze=analyze) as pw:
        for x, _y, ids in batches:
            ids = np.asarray(ids, dtype=np.int64)
            # BALD's dropout draws come from the model and the batch, not the process's RNG state.
            seed = mc_seed_for(model_id, ids[0]) if bald and len(ids) else None
            out = predict_batch(net, as_float(x.to(device, non_blocking=True)), bald, amp, mc_seed=seed)
            ew.write(item_ids=ids, vector=out["embeddings"])
            write_scored(pw, ids, out)  # class_id: the collapse guard's decision
            written += len(ids)
            if time.monotonic() - last >= flush_seconds:
                ew.flush()
                pw.flush()
                last = time.monotonic()
        # The last rows too: leaving them to the writers' exits would flush the
        # predictions first (the inner writer exits first).
        ew.flush()
        pw.flush()
    return written


def infer_project(engine: Engine, project: str | int, model_id: int | None = None, *, bald: int = 0,
                  batch_size: int = 256, device: str = "auto", amp: bool = False, num_workers: int = 0,
                  map_method: str | None = "tsne", map_sample: int = MAP_SAMPLE) -> InferReport:
    """Score the model's inference queue, then map the new embeddings; return what was written.

    A head model (``alsql.models.heads``) is scored by ``infer_head`` from its encoder's stored
    vectors instead: predictions only, no map (the map belongs to the encoder)."""
    import torch
    from sqlalchemy import select
    from torch.utils.data import DataLoader

    from alsql.loaders.datasets import SqlImageDataset, to_uint8_tensor
    from alsql.schema import model_versions

    if bald < 0 or bald > 1000:
        raise AlsqlError(f"--bald {bald}: expected a number of MC-dropout passes from 0 to 1000")
    if map_method is not None and map_method not in ("tsne", "pca"):
        raise AlsqlError(f"--map {map_method!r}: expected tsne or pca")
    with engine.connect() as conn:
        proj = get_project(conn, project)
        model_id = require_model(conn, proj.project_id, model_id)
        arch = conn.execute(select(model_versions.c.architecture).where(model_versions.c.model_id == model_id)).scalar()
    if is_head(arch):  # scored from the encoder's stored vectors: no media, no embeddings, no map
        from alsql.models.heads import infer_head

        return infer_head(engine, proj.project_id, model_id, bald=bald)
    net, meta, _row = load_model(engine, model_id)
    dev = resolve_device(device)
    net.to(dev)
    # Items come as uint8 tensors and each batch is converted to float once (score_batches).
    ds = SqlImageDataset(dataset_url(engine), proj.project_id, view="inference_queue", model_id=model_id,
                         shuffle=False, image_size=meta["image_size"], grayscale=meta["grayscale"],
                         transform=to_uint8_tensor)
    dl = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, pin_memory=dev.type == "cuda")
    threads = torch.get_num_threads()
    if dev.type == "cpu" and num_workers > 0:
        # DataLoader workers decode on cores of their own (one thread each): the forward
        # pass gets the rest, so no core runs two busy threads.
        torch.set_num_threads(max(1, cpu_cores() - num_workers))
    try:
        items = score_batches(engine, model_id, net, dl, dev, bald=bald, amp=amp)
    finally:
        torch.set_num_threads(threads)
    rep = InferReport(model_id, items=items, bald=bald > 0)
    if map_method is not None:
        rep.map = compute_map(engine, model_id, map_method, sample=map_sample)
    return rep
