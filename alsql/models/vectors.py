"""Stored encoder vectors: the dtype a model's ``embeddings.vector`` blobs hold, and reading them back.

A blob is the vector's bytes, little-endian: float16 (``<f2``) by default, float32 (``<f4``)
when the encoder's ``params.encoder.dtype`` says ``float32`` (``alsql embed --dtype float32``).
Every reader of an encoder's vectors goes through ``blob_dtype`` / ``unpack`` so both read back.

- ``read_vectors(conn, model_id, item_ids)`` -> ``(N, D)`` float32 in the order of ``item_ids``
  (AlsqlError naming the ids without a vector).
- ``vector_pages(engine, model_id, source, page, project_id=None)`` -> ``(item_ids (n,), (n, D)
  float32)`` pages in item order, keyset-paged (``item_id > last``): the vectors of the items of
  ``source`` (a view name of ``alsql.schema.views``, a table or view object, or a SELECT with an
  ``item_id`` column); ``project_id`` filters a view that has a ``project_id`` column.
- ``current_encoder(conn, project_id)`` -> the newest encoder row of the project that has vectors.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sqlalchemy import Connection, Engine, exists, select

from alsql.errors import AlsqlError
from alsql.schema import embeddings, model_versions

__all__ = ["DTYPES", "blob_dtype", "model_blob_dtype", "unpack", "read_vectors", "vector_pages", "pages_where",
           "current_encoder"]

DTYPES = {"float16": "<f2", "float32": "<f4"}
_IN_LIST = 2000


def blob_dtype(params: dict | None) -> str:
    """The numpy dtype of a model's vector blobs from its params (``<f2`` unless ``encoder.dtype`` says)."""
    name = ((params or {}).get("encoder") or {}).get("dtype", "float16")
    if name not in DTYPES:
        raise AlsqlError(f"params.encoder.dtype {name!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


def model_blob_dtype(conn: Connection, model_id: int) -> str:
    """``blob_dtype`` of ``model_id``'s params (one key read)."""
    params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == model_id)).scalar()
    return blob_dtype(params)


def unpack(blobs: list, dtype: str) -> np.ndarray:
    """Equal-length blobs -> ``(N, D)`` float32."""
    if not blobs:
        return np.zeros((0, 0), np.float32)
    return np.frombuffer(b"".join(bytes(b) for b in blobs), dtype=dtype).reshape(len(blobs), -1).astype(np.float32)


def read_vectors(conn: Connection, encoder_model_id: int, item_ids) -> np.ndarray:
    """``(N, D)`` float32 vectors of ``item_ids`` (in their order) under ``encoder_model_id``."""
    ids = np.asarray(item_ids, dtype=np.int64).reshape(-1)
    dtype = model_blob_dtype(conn, encoder_model_id)
    found: dict[int, bytes] = {}
    e = embeddings.c
    uniq = np.unique(ids).tolist()
    for s in range(0, len(uniq), _IN_LIST):
        rows = conn.execute(select(e.item_id, e.vector).where(
            e.model_id == encoder_model_id, e.item_id.in_(uniq[s:s + _IN_LIST]), e.vector.is_not(None))).all()
        found.update((int(i), bytes(v)) for i, v in rows)
    missing = [i for i in uniq if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise AlsqlError(f"model {encoder_model_id}: {len(missing):,} item(s) have no stored vector ({shown}); "
                         f"expected items embedded by `alsql embed`")
    return unpack([found[int(i)] for i in ids.tolist()], dtype) if len(ids) else np.zeros((0, 0), np.float32)


def _source_ids(source, project_id: int | None):
    from alsql.schema import views

    if isinstance(source, str):
        if source not in getattr(views, "__all__", ()) or not hasattr(views, source):
            raise AlsqlError(f"view {source!r}: expected a view of alsql.schema.views")
        source = getattr(views, source)
    if hasattr(source, "subquery") and not hasattr(source, "c"):  # a SELECT
        sub = source.subquery()
    else:
        sub = source
    q = select(sub.c.item_id)
    if project_id is not None and "project_id" in sub.c:
        q = q.where(sub.c.project_id == project_id)
    return q


def vector_pages(engine: Engine, encoder_model_id: int, view_or_select, page: int = 50_000, *,
                 project_id: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Keyset pages ``(item_ids, (n, D) float32)`` of the stored vectors of the items of ``view_or_select``."""
    ids_of = _source_ids(view_or_select, project_id)
    return pages_where(engine, encoder_model_id, embeddings.c.item_id.in_(ids_of), page)


def pages_where(engine: Engine, encoder_model_id: int, condition, page: int = 50_000
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Keyset pages ``(item_ids, (n, D) float32)`` of the encoder's stored vectors whose rows
    ``condition`` (a boolean clause on ``embeddings``) keeps, in key order."""
    if page < 1:
        raise AlsqlError(f"page {page}: expected a positive number of rows")
    e = embeddings.c
    with engine.connect() as conn:
        dtype = model_blob_dtype(conn, encoder_model_id)
    after = -(2**62)
    while True:
        q = (select(e.item_id, e.vector)
             .where(e.model_id == encoder_model_id, e.item_id > after, e.vector.is_not(None), condition)
             .order_by(e.item_id).limit(page))
        with engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, unpack([r[1] for r in rows], dtype)
        if len(rows) < page:
            return
        after = int(ids[-1])


def current_encoder(conn: Connection, project_id: int):
    """The newest ``status = 'encoder'`` model of the project that has stored vectors, or None."""
    mv, e = model_versions.c, embeddings.c
    has = exists(select(e.item_id).where(e.model_id == mv.model_id))
    return conn.execute(select(model_versions).where(mv.project_id == project_id, mv.status == "encoder", has)
                        .order_by(mv.model_id.desc()).limit(1)).first()
