"""The 2-D embedding map of a model: openTSNE fitted on a sample, the rest placed by transform.

``compute_map(engine, model_id)`` (``alsql map``; ``alsql infer`` runs it after scoring):

1. Streams the model's embeddings by keyset pages of ``chunk`` rows and keeps a seeded
   sample of at most ``sample`` rows: each item gets a key ``u = hash(seed, item_id)``
   in [0, 1) and the ``sample`` smallest keys win, so membership is a pure function of
   the item (``u < threshold`` and ``item_id <= max_item``) and is not stored per item.
2. Fits openTSNE (FFT-accelerated gradients, ``n_jobs`` threads, ``random_state`` =
   ``seed``, perplexity ``PERPLEXITY``) on the sample and writes its coordinates.
3. Places every other item into that map with ``TSNEEmbedding.transform``, one page at
   a time (memory: the sample plus one page), writing ``x, y`` back in bulk
   (``alsql.loaders.writer.update_xy``).
4. Writes what the map endpoint sends that never changes until the map does (ids,
   quantized coordinates, guesses) beside the model's artifact (``alsql.models.mapfile``),
   also when a run finds nothing new to place but the file is missing or stale.

The method and what rebuilding it needs (seed, threshold, max_item, perplexity; the PCA
mean and axes) go to ``model_versions.params["map"]``. A later run of a model that
already has a map places only the items with no coordinates yet: for t-SNE the reference
(the sample's vectors and stored coordinates) is rebuilt and new items are transformed
into the same map, so coordinates never move. ``refit=True`` (or another method) fits a
new map and places every item again.

``method="pca"`` is the fast fallback (a 2-D PCA fitted on the same sample). A model
with fewer embeddings than the perplexity needs (``3 * PERPLEXITY + 1``) gets the PCA
map and a note saying why, never an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select, update

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import embeddings, model_versions

__all__ = ["MapReport", "compute_map", "fit_pca", "project_pca", "sample_keys", "METHODS", "MAP_SAMPLE",
           "PERPLEXITY", "TRANSFORM_ITER", "map_params"]

METHODS = ("tsne", "pca")
MAP_SAMPLE = 50_000
PERPLEXITY = 30
TRANSFORM_ITER = 100  # openTSNE's transform: new points settle against a fixed reference
CHUNK = 50_000  # rows per page: openTSNE.transform pays a fixed cost per call, so pages are large


@dataclass
class MapReport:
    model_id: int
    method: str
    fitted: int = 0
    placed: int = 0
    note: str | None = None
    seconds: float = 0.0


def sample_keys(item_ids: np.ndarray, seed: int) -> np.ndarray:
    """Seeded keys in [0, 1) per item id (splitmix64 of ``item_id`` mixed with ``seed``)."""
    with np.errstate(over="ignore"):
        z = np.asarray(item_ids, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 1) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def fit_pca(emb: np.ndarray) -> dict:
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


def project_pca(proj: dict, emb: np.ndarray) -> np.ndarray:
    return (np.asarray(emb, dtype=np.float64) - np.asarray(proj["mean"])) @ np.asarray(proj["components"]).T


def map_params(engine: Engine, model_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == model_id)).first()
    if row is None:
        raise AlsqlError(f"--model {model_id}: no such model version")
    return (row.params or {}).get("map")


def _store(engine: Engine, model_id: int, m: dict) -> None:
    with write_transaction(engine) as conn:
        params = conn.execute(
            select(model_versions.c.params).where(model_versions.c.model_id == model_id)).scalar() or {}
        conn.execute(update(model_versions).where(model_versions.c.model_id == model_id)
                     .values(params=dict(params) | {"map": m}))


def _pages(engine: Engine, model_id: int, chunk: int, only_unmapped: bool,
           upto: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(item_ids, vectors float32 (N, D), xy or None)`` pages in item order."""
    from alsql.models.vectors import model_blob_dtype

    e = embeddings.c
    after = 0
    with engine.connect() as conn:
        dtype = model_blob_dtype(conn, model_id)  # float16 unless the encoder stores float32
    while True:
        q = select(e.item_id, e.vector, e.x, e.y).where(e.model_id == model_id, e.item_id > after,
                                                         e.vector.is_not(None))
        if only_unmapped:
            q = q.where(e.x.is_(None))
        if upto is not None:
            q = q.where(e.item_id <= upto)
        with engine.connect() as conn:
            rows = conn.execute(q.order_by(e.item_id).limit(chunk)).all()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vec = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=dtype).reshape(len(rows), -1)
        xy = np.array([(np.nan if r[2] is None else r[2], np.nan if r[3] is None else r[3]) for r in rows])
        yield ids, vec.astype(np.float32), xy
        after = int(ids[-1])
        if len(rows) < chunk:
            return


def _sample(engine: Engine, model_id: int, k: int, seed: int, chunk: int):
    """The ``k`` items of smallest key: ``(ids, vectors, xy, threshold, max_item, total)``."""
    keep_ids, keep_keys = np.zeros(0, np.int64), np.zeros(0)
    keep_vec, keep_xy = None, np.zeros((0, 2))
    total, max_item = 0, 0
    for ids, vec, xy in _pages(engine, model_id, chunk, False):
        total += len(ids)
        max_item = int(ids[-1])
        keys = sample_keys(ids, seed)
        keep_ids = np.concatenate([keep_ids, ids])
        keep_keys = np.concatenate([keep_keys, keys])
        keep_vec = vec if keep_vec is None else np.concatenate([keep_vec, vec])
        keep_xy = np.concatenate([keep_xy, xy])
        if len(keep_ids) > k:
            sel = np.argpartition(keep_keys, k)[:k]
            keep_ids, keep_keys, keep_vec, keep_xy = keep_ids[sel], keep_keys[sel], keep_vec[sel], keep_xy[sel]
    if keep_vec is None:
        return keep_ids, np.zeros((0, 0), np.float32), keep_xy, 1.0, 0, 0
    order = np.argsort(keep_ids)
    threshold = float(keep_keys.max()) if len(keep_ids) == k and total > k else 1.0
    return keep_ids[order], keep_vec[order], keep_xy[order], threshold, max_item, total


def _tsne_reference(vec: np.ndarray, xy: np.ndarray, m: dict, n_jobs: int):
    """Rebuild the fitted map from its sample: affinities of the vectors, stored coordinates."""
    from openTSNE import TSNEEmbedding, affinity

    aff = affinity.PerplexityBasedNN(vec, perplexity=m["perplexity"], n_jobs=n_jobs, random_state=m["seed"])
    return TSNEEmbedding(np.ascontiguousarray(xy, dtype=np.float64), aff, negative_gradient_method="fft",
                         n_jobs=n_jobs, random_state=m["seed"])


def compute_map(engine: Engine, model_id: int, method: str = "tsne", *, sample: int = MAP_SAMPLE, seed: int = 0,
                chunk: int = CHUNK, n_jobs: int = 2, refit: bool = False,
                say: Callable[[str], None] | None = None) -> MapReport:
    """Map the model's embeddings to 2-D (see the module doc); return what was done. A head
    model's map is its encoder's (``alsql.models.heads.embedding_model_id``): that one is mapped."""
    if method not in METHODS:
        raise AlsqlError(f"--map {method!r}: expected one of {', '.join(METHODS)}")
    if not 2 <= sample <= 10_000_000:
        raise AlsqlError(f"--map-sample {sample}: expected a number of items from 2 to 10,000,000")
    if chunk < 1 or n_jobs < 1:
        raise AlsqlError(f"chunk {chunk} / n_jobs {n_jobs}: expected positive numbers")
    t0 = time.perf_counter()
    say = say or (lambda _m: None)
    from alsql.models.heads import embedding_model_id

    with engine.connect() as conn:
        model_id = embedding_model_id(conn, model_id)  # a head's map is its encoder's
    old = map_params(engine, model_id)
    rep = MapReport(int(model_id), method)
    old_method = (old or {}).get("method", "pca")
    if old and not refit and old_method == method and (method == "pca" or "threshold" in old):
        done = _extend(engine, model_id, old, rep, chunk, n_jobs, t0)
        if done is not None:
            _save_static(engine, model_id, rep, say)
            return done
    ids, vec, _xy, threshold, max_item, total = _sample(engine, model_id, sample, seed, chunk)
    if total == 0:
        rep.note = "the model has no embeddings yet: run alsql infer"
        return rep
    m: dict = {"method": method, "seed": seed, "sample": int(len(ids)), "threshold": threshold,
               "max_item": max_item, "perplexity": PERPLEXITY}
    if method == "tsne" and len(ids) < 3 * PERPLEXITY + 1:
        rep.method = m["method"] = "pca"
        rep.note = m["note"] = (f"model {model_id} has {len(ids)} embeddings; t-SNE with perplexity {PERPLEXITY} "
                                f"needs at least {3 * PERPLEXITY + 1}: mapped with PCA instead")
        say(rep.note)
    from alsql.loaders.writer import update_xy

    if m["method"] == "pca":
        m |= fit_pca(vec)
        placed = 0
        for p_ids, p_vec, _ in _pages(engine, model_id, chunk, False):
            xy = project_pca(m, p_vec)
            placed += update_xy(engine, model_id, p_ids, xy[:, 0], xy[:, 1])
        rep.fitted, rep.placed = len(ids), placed
    else:
        from openTSNE import TSNE

        say(f"model {model_id}: t-SNE on a sample of {len(ids):,} of {total:,} embeddings")
        emb = TSNE(perplexity=PERPLEXITY, n_jobs=n_jobs, random_state=seed, negative_gradient_method="fft",
                   verbose=False).fit(vec)
        update_xy(engine, model_id, ids, emb[:, 0], emb[:, 1])
        del vec
        rep.fitted = len(ids)
        rep.placed = len(ids) + _transform_pages(engine, model_id, emb, m, chunk, only_unmapped=False, say=say)
    rep.seconds = time.perf_counter() - t0
    _store(engine, model_id, m | {"items": rep.placed, "fitted_at": time.time(), "seconds": round(rep.seconds, 2)})
    _save_static(engine, model_id, rep, say)
    return rep


def _save_static(engine: Engine, model_id: int, rep: MapReport, say: Callable[[str], None]) -> None:
    """Write the map's static part beside the model's artifact for the map endpoint; a store that
    refuses it costs only speed (the endpoint builds it from SQL), so it becomes a note."""
    from alsql.models import mapfile

    try:
        mapfile.save_static(engine, model_id)
    except mapfile.STORE_ERRORS as exc:
        rep.note = ((rep.note + "; ") if rep.note else "") + f"the map's file for the app was not written: {exc}"
        say(rep.note)


def _in_sample(ids: np.ndarray, m: dict) -> np.ndarray:
    return (sample_keys(ids, m["seed"]) <= m["threshold"]) & (ids <= m["max_item"])


def _transform_pages(engine: Engine, model_id: int, emb, m: dict, chunk: int, only_unmapped: bool,
                     say: Callable[[str], None]) -> int:
    from alsql.loaders.writer import update_xy

    placed = 0
    for ids, vec, _ in _pages(engine, model_id, chunk, only_unmapped):
        rest = ~_in_sample(ids, m) if not only_unmapped else np.ones(len(ids), bool)
        if not rest.any():
            continue
        xy = np.asarray(emb.transform(vec[rest], n_iter=TRANSFORM_ITER))
        placed += update_xy(engine, model_id, ids[rest], xy[:, 0], xy[:, 1])
        say(f"model {model_id}: {placed:,} items placed into the map")
    return placed


def _extend(engine: Engine, model_id: int, m: dict, rep: MapReport, chunk: int, n_jobs: int,
            t0: float) -> MapReport | None:
    """Place the items without coordinates into the model's existing map (None: no reference left)."""
    from alsql.loaders.writer import update_xy

    rep.method = m.get("method", "pca")
    pending = next(_pages(engine, model_id, 1, True), None)
    if pending is None:
        rep.seconds = time.perf_counter() - t0
        return rep
    if rep.method == "pca":
        for ids, vec, _ in _pages(engine, model_id, chunk, True):
            xy = project_pca(m, vec)
            rep.placed += update_xy(engine, model_id, ids, xy[:, 0], xy[:, 1])
    else:
        ref_ids, ref_vec, ref_xy = [], [], []
        for ids, vec, xy in _pages(engine, model_id, chunk, False, upto=m["max_item"]):
            keep = _in_sample(ids, m) & ~np.isnan(xy[:, 0])
            ref_ids.append(ids[keep])
            ref_vec.append(vec[keep])
            ref_xy.append(xy[keep])
        if sum(len(i) for i in ref_ids) < 3 * m["perplexity"] + 1:
            return None  # the sample lost its coordinates: fit again
        emb = _tsne_reference(np.concatenate(ref_vec), np.concatenate(ref_xy), m, n_jobs)
        rep.placed = _transform_pages(engine, model_id, emb, m, chunk, only_unmapped=True, say=lambda _m: None)
    rep.seconds = time.perf_counter() - t0
    _store(engine, model_id, m | {"items": int(m.get("items", 0)) + rep.placed, "extended_at": time.time()})
    return rep
