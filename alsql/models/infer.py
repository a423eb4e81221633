"""``alsql infer``: score every ok item of a project that the model has not scored yet.

Reads the ``inference_queue`` view (ok items without a prediction of the model)
through ``SqlImageDataset``, so a re-run after a crash finishes the rest. Per item it
writes, through ``PredictionWriter``:

- ``predictions``: class_id, confidence, margin, entropy, probs (float16), and bald
  when ``bald`` > 0 MC-dropout passes are asked for;
- ``embeddings``: the penultimate-layer vector (float16) and 2-D map coordinates.

The map is a PCA fitted on the first chunk of embeddings (at most ``MAP_SAMPLE``
rows) and stored in the model's ``params["map"]``, so every run (and a resumed one)
projects with the same axes. Memory is bounded by one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select, update

from alsql.catalog import get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.models.artifacts import load_model
from alsql.models.fit import resolve_device
from alsql.models.pool import require_model
from alsql.models.predict import predict_batch
from alsql.models.strategies.scores import score_columns
from alsql.models.train import dataset_url
from alsql.schema import model_versions

__all__ = ["InferReport", "infer_project", "score_batches", "fit_map", "MAP_SAMPLE"]

MAP_SAMPLE = 2048


@dataclass
class InferReport:
    model_id: int
    items: int = 0
    bald: bool = False


def fit_map(emb: np.ndarray) -> dict:
    """PCA to 2-D of ``emb`` ``(N, D)``: ``{"mean": (D,), "components": (2, D)}`` as lists."""
    e = np.asarray(emb, dtype=np.float64)
    mean = e.mean(axis=0)
    comps = np.zeros((2, e.shape[1]))
    if e.shape[0] > 1:
        cov = np.cov(e - mean, rowvar=False).reshape(e.shape[1], e.shape[1])
        _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues: the last two are the axes
        top = vecs[:, ::-1][:, :2].T
        comps[: top.shape[0]] = top
    return {"mean": mean.tolist(), "components": comps.tolist()}


def _project(proj: dict, emb: np.ndarray) -> np.ndarray:
    return (np.asarray(emb, dtype=np.float64) - np.asarray(proj["mean"])) @ np.asarray(proj["components"]).T


def _store_map(engine: Engine, model_id: int, proj: dict) -> dict:
    with write_transaction(engine) as conn:
        params = conn.execute(
            select(model_versions.c.params).where(model_versions.c.model_id == model_id)
        ).scalar() or {}
        conn.execute(
            update(model_versions).where(model_versions.c.model_id == model_id)
            .values(params=dict(params) | {"map": proj})
        )
    return proj


def score_batches(engine: Engine, model_id: int, net, batches, device, mapping: dict | None = None, *,
                  bald: int = 0, amp: bool = False) -> int:
    """Score ``(x, _y, ids)`` batches and write predictions and embeddings; return the items written.

    When the model has no map yet (``mapping`` None), the first ``MAP_SAMPLE`` embeddings
    are held back, the PCA is fitted on them and stored, then they are written too.
    """
    from alsql.loaders.writer import PredictionWriter

    written = 0
    pending: list[tuple[np.ndarray, dict]] = []
    with PredictionWriter(engine, model_id, kind="predictions") as pw, \
            PredictionWriter(engine, model_id, kind="embeddings") as ew:
        def write(ids: np.ndarray, out: dict) -> None:
            nonlocal written
            cols = score_columns(out["probs"])
            xy = _project(mapping, out["embeddings"])
            ew.write(item_ids=ids, vector=out["embeddings"], x=xy[:, 0], y=xy[:, 1])
            pw.write(item_ids=ids, class_id=cols["class_id"], confidence=cols["confidence"],
                     margin=cols["margin"], entropy=cols["entropy"], bald=out.get("bald"), probs=out["probs"])
            written += len(ids)

        def fit_pending() -> None:
            nonlocal mapping, pending
            mapping = _store_map(engine, model_id, fit_map(np.concatenate([p[1]["embeddings"] for p in pending])))
            for p_ids, p_out in pending:
                write(p_ids, p_out)
            pending = []

        for x, _y, ids in batches:
            out = predict_batch(net, x.to(device, non_blocking=True), bald, amp)
            ids = np.asarray(ids, dtype=np.int64)
            if mapping is None:
                pending.append((ids, out))
                if sum(len(p[0]) for p in pending) >= MAP_SAMPLE:
                    fit_pending()
                continue
            write(ids, out)
        if pending:
            fit_pending()
    return written


def infer_project(engine: Engine, project: str | int, model_id: int | None = None, *, bald: int = 0,
                  batch_size: int = 256, device: str = "auto", amp: bool = False,
                  num_workers: int = 0) -> InferReport:
    """Score the model's inference queue; return how many items were written."""
    from torch.utils.data import DataLoader

    from alsql.loaders.datasets import SqlImageDataset

    if bald < 0 or bald > 1000:
        raise AlsqlError(f"--bald {bald}: expected a number of MC-dropout passes from 0 to 1000")
    with engine.connect() as conn:
        proj = get_project(conn, project)
        model_id = require_model(conn, proj.project_id, model_id)
    net, meta, row = load_model(engine, model_id)
    dev = resolve_device(device)
    net.to(dev)
    ds = SqlImageDataset(dataset_url(engine), proj.project_id, view="inference_queue", model_id=model_id,
                         shuffle=False, image_size=meta["image_size"], grayscale=meta["grayscale"])
    dl = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, pin_memory=dev.type == "cuda")
    items = score_batches(engine, model_id, net, dl, dev, (row.params or {}).get("map"), bald=bald, amp=amp)
    return InferReport(model_id, items=items, bald=bald > 0)
