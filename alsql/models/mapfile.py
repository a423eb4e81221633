"""The static part of a model's map (what never changes until the map does), and its file.

The map endpoint (``alsql.web.mapdata``) sends, per mapped item: item id, ``x`` and ``y``
quantized to uint16 over the map's bounds, predicted class and confidence (uint8). These
depend only on the model's map, whose version is ``map_version``: ``(model_id, items,
fitted_at, extended_at, method)`` from ``model_versions.params["map"]``.

``build_static`` reads them from SQL (two range scans on the clustered keys of
``embeddings`` and ``predictions``): seconds at a million points. So the map step
(``alsql.models.maps.compute_map``: ``alsql map``, ``alsql infer``, the claim worker that
maps a model) calls ``save_static``, which writes them once as a compact file beside the
model's artifact, ``<artifact_uri>.map``, through the artifact's blob store (a folder or
``az://``), keyed by the map version. ``load_static`` returns the file's arrays only when
its key equals the current map version and its length is exact; otherwise (no artifact,
no file, an older map, a damaged file, an unreadable store) it returns None and the
caller builds from SQL. Readers never write the file.

File layout (little-endian): ``b"AMPS"``, uint32 layout version (1), uint32 n, uint32
key length k, float64 x0, x1, y0, y1 (the bounds), k bytes of the key as JSON, then
``ids`` uint32[n], ``xq`` uint16[n], ``yq`` uint16[n], ``pred`` uint8[n], ``conf`` uint8[n]
(255 = none; class ids above 254 are 254; confidence is ``round(254 * c)``).
"""

from __future__ import annotations

import json
import struct

import numpy as np
from sqlalchemy import Connection, Engine, select

from alsql.errors import AlsqlError
from alsql.schema import embeddings, model_versions, predictions
from alsql.stores import store_for

__all__ = ["map_version", "build_static", "static_uri", "encode_static", "decode_static", "save_static",
           "load_static", "STORE_ERRORS", "NONE"]

NONE = 255
_HEAD = "<4sIIIdddd"
_HEAD_SIZE = struct.calcsize(_HEAD)  # 48
try:  # a blob service's own errors (other than a missing blob) are not OSErrors
    from azure.core.exceptions import AzureError as _AzureError

    STORE_ERRORS: tuple[type[BaseException], ...] = (OSError, AlsqlError, _AzureError)
except ImportError:  # pragma: no cover - the Azure SDK is a dependency
    STORE_ERRORS = (OSError, AlsqlError)
_COLS = (("ids", "<u4"), ("xq", "<u2"), ("yq", "<u2"), ("pred", "u1"), ("conf", "u1"))


def _row(conn: Connection, model_id: int) -> tuple[tuple, str | None]:
    row = conn.execute(select(model_versions.c.params, model_versions.c.artifact_uri)
                       .where(model_versions.c.model_id == model_id)).first()
    params, uri = (row.params, row.artifact_uri) if row is not None else (None, None)
    enc = (params or {}).get("encoder_model_id") if (params or {}).get("kind") == "head" else None
    if enc is None:
        m = (params or {}).get("map") or {}
        return (int(model_id), m.get("items"), m.get("fitted_at"), m.get("extended_at"), m.get("method")), uri
    # A head shows its encoder's map with its own guesses: the version follows both.
    m = (conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == enc)).scalar() or {}).get(
        "map") or {}
    scored = (params or {}).get("scored_at")
    return (int(model_id), m.get("items"), m.get("fitted_at"), m.get("extended_at"), m.get("method"), scored), uri


def map_version(conn: Connection, model_id: int) -> tuple:
    """``(model_id, items, fitted_at, extended_at, method)`` of the model's map (Nones: no map)."""
    return _row(conn, model_id)[0]


def static_uri(artifact_uri: str) -> str:
    """Where the static part of the map of the model whose artifact is ``artifact_uri`` lives."""
    return artifact_uri + ".map"


def _quantize(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    if not span > 0:
        return np.zeros(len(v), "<u2")
    return np.round((v - lo) * (65535.0 / span)).astype("<u2")


def build_static(conn: Connection, model_id: int) -> dict[str, np.ndarray]:
    """``ids`` (uint32, item order), ``xq``, ``yq`` (uint16), ``pred``, ``conf`` (uint8), ``bounds``
    (float64 ``[x0, x1, y0, y1]``) of the mapped items, read from SQL."""
    from alsql.models.heads import embedding_model_id

    e, p = embeddings.c, predictions.c
    rows = conn.execute(select(e.item_id, e.x, e.y).where(e.model_id == embedding_model_id(conn, model_id),
                                                          e.x.is_not(None))
                        .order_by(e.item_id)).cursor.fetchall()
    pts = np.fromiter(rows, dtype=[("i", "<i8"), ("x", "<f8"), ("y", "<f8")], count=len(rows))
    del rows
    ids = pts["i"]
    if len(ids) and ids[-1] >= 2**32:
        raise AlsqlError(f"model {model_id}: item ids above 2**32 do not fit the map format")
    pred = np.full(len(ids), NONE, np.uint8)
    conf = np.full(len(ids), NONE, np.uint8)
    if len(ids):
        guess = conn.execute(select(p.item_id, p.class_id, p.confidence).where(
            p.model_id == model_id, p.item_id.between(int(ids[0]), int(ids[-1]))).order_by(p.item_id)).cursor.fetchall()
        g = np.fromiter(((a, -1 if b is None else b, -1.0 if c is None else c) for a, b, c in guess),
                        dtype=[("i", "<i8"), ("c", "<i4"), ("f", "<f8")], count=len(guess))
        del guess
        at = np.searchsorted(ids, g["i"])
        hit = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == g["i"])
        at, g = at[hit], g[hit]
        pred[at] = np.where(g["c"] < 0, NONE, np.minimum(g["c"], 254))
        conf[at] = np.where(g["f"] < 0, NONE, np.round(np.clip(g["f"], 0, 1) * 254))
    x, y = pts["x"], pts["y"]
    bounds = (float(x.min()), float(x.max()), float(y.min()), float(y.max())) if len(ids) else (0.0, 1.0, 0.0, 1.0)
    return {"ids": ids.astype("<u4"), "xq": _quantize(x, *bounds[:2]), "yq": _quantize(y, *bounds[2:]),
            "pred": pred, "conf": conf, "bounds": np.array(bounds)}


def encode_static(key: tuple, s: dict[str, np.ndarray]) -> bytes:
    """The file's bytes for the static part ``s`` of the map whose version is ``key``."""
    k = json.dumps(list(key)).encode()
    n = len(s["ids"])
    head = struct.pack(_HEAD, b"AMPS", 1, n, len(k), *[float(b) for b in s["bounds"]])
    return b"".join([head, k, *(np.ascontiguousarray(s[name], dtype=dt).tobytes() for name, dt in _COLS)])


def decode_static(data: bytes, key: tuple) -> dict[str, np.ndarray] | None:
    """The arrays of ``data`` when it is a whole file for map version ``key``; else None."""
    if len(data) < _HEAD_SIZE:
        return None
    magic, layout, n, klen, *bounds = struct.unpack_from(_HEAD, data)
    if magic != b"AMPS" or layout != 1 or len(data) != _HEAD_SIZE + klen + 10 * n:
        return None
    try:
        if json.loads(data[_HEAD_SIZE:_HEAD_SIZE + klen]) != json.loads(json.dumps(list(key))):
            return None
    except ValueError:
        return None
    out, at = {}, _HEAD_SIZE + klen
    for name, dt in _COLS:
        a = np.frombuffer(data, dt, n, at)
        out[name] = a
        at += a.nbytes
    out["bounds"] = np.array(bounds, dtype=np.float64)
    return out


def load_static(conn: Connection, model_id: int, key: tuple | None = None) -> dict[str, np.ndarray] | None:
    """The static part from the model's file when it matches the current map version, else None."""
    cur, uri = _row(conn, model_id)
    if key is not None and key != cur:
        return None
    if not uri or cur[1] is None:
        return None
    try:
        data = store_for(static_uri(uri)).open(static_uri(uri))
    except STORE_ERRORS:  # missing (BlobMissing is a FileNotFoundError), refused, unreachable
        return None
    return decode_static(data, cur)


def save_static(engine: Engine, model_id: int) -> str | None:
    """Write the static part of the model's current map beside its artifact unless an up-to-date
    file is there; return its uri (None: the model has no artifact or no map)."""
    with engine.connect() as conn:
        key, uri = _row(conn, model_id)
        if not uri or key[1] is None:
            return None
        if load_static(conn, model_id, key) is not None:
            return static_uri(uri)
        s = build_static(conn, model_id)
        if map_version(conn, model_id) != key:  # the map moved on while it was read: its own step writes it
            return None
    store_for(static_uri(uri)).put(static_uri(uri), encode_static(key, s))
    return static_uri(uri)
