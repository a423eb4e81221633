"""Reading the selectable pool from SQL in bounded memory.

An item is selectable for a project when it is ``ok``, has no annotation in the
project, and is not pending in an open round of the project. Everything here
streams or probes: a seeded random sample of a large pool draws random key values
within ``[min, max]`` of the key and keeps the selectable ones that exist (bounded
time, not a scan of the pool); a small pool is a reservoir over the streamed ids
(``O(k)`` memory). Embeddings are read in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sqlalchemy import Connection, and_, exists, func, literal, select

from alsql.errors import AlsqlError
from alsql.schema import annotations, embeddings, items, model_versions, predictions, round_items, rounds
from alsql.schema.scope import in_scope
from alsql.schema.views import training_set

__all__ = [
    "selectable",
    "latest_model_id",
    "random_sample",
    "probe_sample",
    "read_candidates",
    "labeled_embedding_chunks",
    "unpack_vectors",
    "require_model",
    "vectors_model_id",
    "vector_dtype",
    "read_vectors_of",
]

_STREAM = 10_000
_IN_CHUNK = 500
PROBE_MIN_SPAN = 200_000  # key spans up to this are sampled by the exact reservoir
_PROBE_IN = 1000  # probed ids per query (SQL Server allows 2,100 parameters)


def selectable(project_id: int, item_col):
    """SQL condition: ``item_col`` may be selected for ``project_id``.

    True when the item is ``ok``, in the project's scope (``alsql.schema.scope``), has no
    annotation in the project, and is not pending in an open round of the project.
    ``item_col`` may be a column of any outer query (``items``, ``predictions``, ...).
    """
    labeled = exists(
        select(literal(1)).where(annotations.c.project_id == project_id, annotations.c.item_id == item_col)
    )
    pending = exists(
        select(literal(1))
        .select_from(round_items.join(rounds, rounds.c.round_id == round_items.c.round_id))
        .where(
            round_items.c.item_id == item_col,
            round_items.c.status == literal("pending"),
            rounds.c.status == literal("open"),
            rounds.c.project_id == project_id,
        )
    )
    # An alias, so the check stays correlated with ``item_col`` even when the outer
    # query reads ``items`` itself (a bare ``items`` here would correlate to nothing).
    it = items.alias("selectable_item")
    ok = exists(select(literal(1)).where(it.c.item_id == item_col, it.c.status == literal("ok"),
                                         in_scope(project_id, it)))
    return and_(ok, ~labeled, ~pending)


def latest_model_id(conn: Connection, project_id: int) -> int | None:
    """The newest ready model of the project, or None."""
    return conn.execute(
        select(func.max(model_versions.c.model_id)).where(
            model_versions.c.project_id == project_id, model_versions.c.status == literal("ready")
        )
    ).scalar()


def random_sample(conn: Connection, query, k: int, seed: int) -> np.ndarray:
    """A seeded uniform sample of ``k`` ids from ``query`` (one integer column), streamed.

    Each id gets a random key from ``seed``; the ``k`` smallest keys win (a reservoir).
    Memory is ``O(k + stream chunk)``. Returned in key order (the rank order).
    """
    rng = np.random.default_rng(seed)
    best_ids = np.zeros(0, dtype=np.int64)
    best_keys = np.zeros(0)
    result = conn.execution_options(yield_per=_STREAM).execute(query)
    for part in result.partitions():
        ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
        keys = rng.random(len(ids))
        best_ids = np.concatenate([best_ids, ids])
        best_keys = np.concatenate([best_keys, keys])
        if len(best_ids) > k:
            keep = np.argpartition(best_keys, k)[:k]
            best_ids, best_keys = best_ids[keep], best_keys[keep]
    order = np.argsort(best_keys, kind="stable")
    return best_ids[order]


def probe_sample(conn: Connection, project_id: int, k: int, seed: int, model_id: int | None = None,
                 vectors: bool = False) -> np.ndarray:
    """A seeded uniform sample of ``k`` selectable items (with a prediction of ``model_id`` when given;
    with ``vectors``, with an embedding of ``model_id`` instead: an encoder's vectors).

    Bounded time on any pool size: random key values are drawn (seeded) within
    ``[min, max]`` of the key (``items.item_id``, or the model's range of
    ``predictions``), and those that exist and are selectable are kept, in draw order,
    until ``k`` are found: rejection sampling, so every selectable item is equally
    likely, and each round reads only the probed keys. A key span up to
    ``PROBE_MIN_SPAN``, or a pool too sparse in its span (fewer than ``k`` found after
    probing ``50 k`` keys or half the span), is sampled by ``random_sample`` instead (a
    stream over the pool: exact, ``O(k)`` memory). Returns ``(min(k, pool),)`` ids.
    """
    if model_id is None:
        key, where = items.c.item_id, []
    elif vectors:
        key, where = embeddings.c.item_id, [embeddings.c.model_id == model_id]
    else:
        key, where = predictions.c.item_id, [predictions.c.model_id == model_id]
    pool = select(key).where(*where, selectable(project_id, key))
    lo, hi = conn.execute(select(func.min(key), func.max(key)).where(*where)).one()
    k = int(k)
    if lo is None or k <= 0:
        return np.zeros(0, dtype=np.int64)
    span = int(hi) - int(lo) + 1
    if span <= max(PROBE_MIN_SPAN, 4 * k):
        return random_sample(conn, pool.order_by(key), k, seed)
    rng = np.random.default_rng(seed)
    tried: set[int] = set()
    found: list[int] = []
    rate = 0.5
    budget = min(span // 2, 50 * k)
    while len(found) < k and len(tried) < budget:
        want = min(int((k - len(found)) / max(rate, 0.02) * 1.25) + 64, budget - len(tried))
        draw = [d for d in dict.fromkeys(rng.integers(int(lo), int(hi) + 1, size=want).tolist()) if d not in tried]
        tried.update(draw)
        hits: set[int] = set()
        for s in range(0, len(draw), _PROBE_IN):
            hits.update(conn.execute(pool.where(key.in_(draw[s : s + _PROBE_IN]))).scalars())
        found += [d for d in draw if d in hits]
        rate = max(len(hits) / max(len(draw), 1), 0.0)
    if len(found) < k:  # a sparse or nearly exhausted pool: the exact stream
        return random_sample(conn, pool.order_by(key), k, seed)
    return np.asarray(found[:k], dtype=np.int64)


def unpack_vectors(blobs: list[bytes], width: int | None = None, dtype: str = "<f2") -> np.ndarray:
    """Packed blobs (float16 by default; ``dtype`` ``"<f4"`` for float32 ones) -> ``(N, D)`` float32."""
    rows = [np.frombuffer(b, dtype=dtype).astype(np.float32).reshape(-1) for b in blobs]
    if not rows:
        return np.zeros((0, width or 0), dtype=np.float32)
    return np.stack(rows)


def vectors_model_id(conn: Connection, model_id: int) -> int:
    """The model whose ``embeddings`` rows hold ``model_id``'s vectors: a head's encoder
    (``params.encoder_model_id``), else the model itself."""
    try:
        from alsql.models.heads import embedding_model_id
    except ImportError:
        params = conn.execute(
            select(model_versions.c.params).where(model_versions.c.model_id == model_id)
        ).scalar() or {}
        enc = params.get("encoder_model_id") if isinstance(params, dict) else None
        return int(enc) if enc is not None else int(model_id)
    return int(embedding_model_id(conn, model_id))


def vector_dtype(conn: Connection, model_id: int) -> str:
    """The numpy dtype of ``model_id``'s stored vectors: float32 when its ``params.encoder.dtype``
    says so, float16 otherwise."""
    params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == model_id)).scalar()
    enc = (params or {}).get("encoder") if isinstance(params, dict) else None
    return "<f4" if isinstance(enc, dict) and enc.get("dtype") == "float32" else "<f2"


def read_vectors_of(conn: Connection, vectors_id: int, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(item_ids (M,), vectors (M, D) float32)``: the stored vectors of ``vectors_id`` for
    ``item_ids``, sorted by item id (items without one dropped), read ``_IN_CHUNK`` ids at a time."""
    ids = np.sort(np.asarray(item_ids, dtype=np.int64))
    rows = []
    for s in range(0, len(ids), _IN_CHUNK):
        rows += conn.execute(
            select(embeddings.c.item_id, embeddings.c.vector)
            .where(embeddings.c.model_id == vectors_id,
                   embeddings.c.item_id.in_([int(i) for i in ids[s : s + _IN_CHUNK]]))
            .order_by(embeddings.c.item_id)
        ).all()
    return (np.array([r.item_id for r in rows], dtype=np.int64),
            unpack_vectors([r.vector for r in rows], dtype=vector_dtype(conn, vectors_id)))


def read_candidates(conn: Connection, model_id: int, item_ids: np.ndarray, need_probs: bool,
                    need_embeddings: bool, vectors_id: int | None = None) -> dict[str, np.ndarray]:
    """Stored scores (and probs / embeddings when asked) of ``item_ids``, sorted by item id.

    ``vectors_id``: the model whose embeddings are read (a head's encoder), default ``model_id``.

    Items lacking a prediction (or an embedding, when needed) are dropped. Returns
    ``item_ids (M,)``, ``confidence``, ``margin``, ``entropy``, ``bald`` ``(M,)``
    (bald NaN when absent), ``probs (M, C)``, ``embeddings (M, D)``.
    """
    ids = np.sort(np.asarray(item_ids, dtype=np.int64))
    cols = [predictions.c.item_id, predictions.c.confidence, predictions.c.margin,
            predictions.c.entropy, predictions.c.bald]
    if need_probs:
        cols.append(predictions.c.probs)
    if need_embeddings:
        cols.append(embeddings.c.vector)
    src = predictions
    vectors_id = model_id if vectors_id is None else vectors_id
    if need_embeddings:
        src = predictions.join(
            embeddings,
            and_(embeddings.c.model_id == vectors_id, embeddings.c.item_id == predictions.c.item_id),
        )
    rows = []
    for s in range(0, len(ids), _IN_CHUNK):
        part = [int(i) for i in ids[s : s + _IN_CHUNK]]
        rows += conn.execute(
            select(*cols).select_from(src).where(
                predictions.c.model_id == model_id, predictions.c.item_id.in_(part)
            ).order_by(predictions.c.item_id)
        ).all()
    out = {
        "item_ids": np.array([r.item_id for r in rows], dtype=np.int64),
        "confidence": np.array([r.confidence for r in rows], dtype=np.float64),
        "margin": np.array([r.margin for r in rows], dtype=np.float64),
        "entropy": np.array([r.entropy for r in rows], dtype=np.float64),
        "bald": np.array([np.nan if r.bald is None else r.bald for r in rows], dtype=np.float64),
    }
    if need_probs:
        out["probs"] = unpack_vectors([r.probs for r in rows])
    if need_embeddings:
        out["embeddings"] = unpack_vectors([r.vector for r in rows], dtype=vector_dtype(conn, vectors_id))
    return out


def labeled_embedding_chunks(conn: Connection, project_id: int, model_id: int,
                             chunk: int = 4096, classes: list[int] | None = None) -> Iterator[np.ndarray]:
    """Embeddings ``(L_i, D)`` of the project's training items (of ``classes`` when given), in item id order.

    Keyed on the labeled ids: ``training_set``'s item ids of the project are read
    once (one int per label), then their embeddings by the clustered key
    ``(model_id, item_id)``, ``chunk`` ids at a time. Cost grows with the labels, not
    with the model's embeddings. Labeled items without an embedding are skipped.
    """
    q = select(training_set.c.item_id).where(training_set.c.project_id == project_id)
    if classes is not None:
        q = q.where(training_set.c.class_id.in_([int(c) for c in classes]))
    ids = np.unique(np.asarray(conn.execute(q).scalars().all(), dtype=np.int64))
    dtype = vector_dtype(conn, model_id)
    for s in range(0, len(ids), chunk):
        part = ids[s : s + chunk]
        rows = []
        for t in range(0, len(part), _IN_CHUNK):
            rows += conn.execute(
                select(embeddings.c.item_id, embeddings.c.vector)
                .where(embeddings.c.model_id == model_id,
                       embeddings.c.item_id.in_([int(i) for i in part[t : t + _IN_CHUNK]]))
                .order_by(embeddings.c.item_id)
            ).all()
        if rows:
            yield unpack_vectors([r.vector for r in rows], dtype=dtype)


def require_model(conn: Connection, project_id: int, model_id: int | None) -> int:
    """``model_id`` checked to belong to the project, or the latest model."""
    if model_id is None:
        model_id = latest_model_id(conn, project_id)
        if model_id is None:
            raise AlsqlError(
                f"project {project_id} has no trained model; run `alsql train` and `alsql infer` "
                f"first, or use --strategy random"
            )
        return model_id
    owner = conn.execute(
        select(model_versions.c.project_id).where(model_versions.c.model_id == model_id)
    ).scalar()
    if owner != project_id:
        raise AlsqlError(f"--model {model_id}: expected a model of project {project_id}")
    return model_id
