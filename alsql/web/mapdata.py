"""The map as compact typed arrays, and the lasso / box selection decided on the server.

``map_binary`` answers the map page: 12 bytes per point after a 48-byte header, all
little-endian (``FORMAT``):

- header: ``b"AMAP"``, uint32 version (1), uint32 n, uint32 model_id, float64 x0, x1,
  y0, y1 (the bounds the coordinates are quantized to);
- ``item_id`` uint32[n] (item order), ``x`` uint16[n], ``y`` uint16[n] (``0..65535``
  over the bounds), ``label`` uint8[n] (the label of record as in ``current_labels``; 255 = not labeled),
  ``predicted`` uint8[n] (255 = none), ``confidence`` uint8[n] (``round(254 * c)``;
  255 = none), ``flags`` uint8[n] (bit 0 labeled, bit 1 the model disagrees with the
  label, bit 2 pending in an open round). Class ids above 254 are sent as 254.

What never changes for a model's map (ids, coordinates, guesses) is kept per process
(``_STATIC``, keyed by the database and ``alsql.models.mapfile.map_version``); on a miss it is read from
the file the map step wrote beside the model's artifact when that file is for the current
map version, else built from SQL (``alsql.models.mapfile``). Labels and open rounds are
read on every request.

``points_in_polygon`` is the even-odd test; ``select_in_polygon`` reads the stored
``x, y`` (never a client's list of ids) and returns the items inside, split into
labeled, unlabeled (selectable: ok, no label, not pending in an open round) and queued.
``map_round`` turns the selectable ones into a train round with strategy ``map`` and the
polygon in its params.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, select

from alsql.catalog import Project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.rounds import MAX_ROUND, insert_round
from alsql.models.mapfile import NONE, build_static, load_static, map_version
from alsql.schema import current_labels, embeddings, items, round_items, rounds
from alsql.schema.scope import in_scope

__all__ = ["map_binary", "points_in_polygon", "select_in_polygon", "map_round", "insert_round", "check_polygon",
           "FORMAT", "HEADER", "NONE"]

FORMAT = "<4sIIIdddd"
HEADER = struct.calcsize(FORMAT)  # 48
MAX_VERTICES = 2000
_STATIC: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_STATIC_KEEP = 2
_LOCK = threading.Lock()


def _static(conn: Connection, model_id: int) -> dict[str, np.ndarray]:
    """The static part of the model's map: the per-process cache, else the file the map step
    wrote (``alsql.models.mapfile``) when it is for the current map, else the SQL build (the
    web never writes the file)."""
    version = map_version(conn, model_id)
    key = (conn.engine.url.render_as_string(hide_password=False), version)  # one process may serve several databases
    with _LOCK:
        hit = _STATIC.get(key)
        if hit is not None:
            _STATIC.move_to_end(key)
            return hit
    out = load_static(conn, model_id, version)
    if out is None:
        out = build_static(conn, model_id)
    with _LOCK:
        _STATIC[key] = out
        while len(_STATIC) > _STATIC_KEEP:
            _STATIC.popitem(last=False)
    return out


def _positions(ids: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Indexes in sorted ``ids`` of the members of ``which`` that are there."""
    which = np.asarray(which, dtype=np.int64)
    at = np.searchsorted(ids, which)
    ok = at < len(ids)
    ok[ok] = ids[at[ok]] == which[ok]
    return at[ok]


def _labels(conn: Connection, project_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The label of record per labeled item, as ``(item_ids, class_ids)`` sorted by item: one
    read of the ``current_labels`` view (review > gold > majority, docs/quality.md), the rule
    the labeling page and training use; items whose rows carry no label of record (no vote,
    gold or review) are left out."""
    cl = current_labels.c
    rows = conn.execute(select(cl.item_id, cl.class_id)
                        .where(cl.project_id == project_id, cl.class_id.is_not(None))
                        .order_by(cl.item_id)).cursor.fetchall()
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def _queued(conn: Connection, project_id: int) -> np.ndarray:
    ri, r = round_items.c, rounds.c
    return np.fromiter(conn.execute(
        select(ri.item_id).select_from(round_items.join(rounds, r.round_id == ri.round_id))
        .where(r.project_id == project_id, r.status == "open", ri.status == "pending")).scalars(), np.int64)


def map_binary(conn: Connection, project: Project, model_id: int | None) -> bytes:
    """The model's map in ``FORMAT`` (n = 0 when there is no model or no mapped item)."""
    if model_id is None:
        return struct.pack(FORMAT, b"AMAP", 1, 0, 0, 0.0, 1.0, 0.0, 1.0)
    s = _static(conn, model_id)
    ids = s["ids"].astype(np.int64)
    n = len(ids)
    label = np.full(n, NONE, np.uint8)
    flags = np.zeros(n, np.uint8)
    lab_ids, lab_cls = _labels(conn, project.project_id)
    at = np.searchsorted(ids, lab_ids)
    hit = at < n
    hit[hit] = ids[at[hit]] == lab_ids[hit]
    label[at[hit]] = np.minimum(lab_cls[hit], 254)
    flags[at[hit]] |= 1
    disagree = (label != NONE) & (s["pred"] != NONE) & (label != s["pred"])
    flags[disagree] |= 2
    flags[_positions(ids, _queued(conn, project.project_id))] |= 4
    head = struct.pack(FORMAT, b"AMAP", 1, n, int(model_id), *s["bounds"].tolist())
    return b"".join([head, s["ids"].tobytes(), s["xq"].tobytes(), s["yq"].tobytes(), label.tobytes(),
                     s["pred"].tobytes(), s["conf"].tobytes(), flags.tobytes()])


def check_polygon(polygon: Any) -> np.ndarray:
    """``[[x, y], ...]`` (3 to ``MAX_VERTICES`` finite vertices, map coordinates) -> ``(V, 2)``."""
    try:
        poly = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise AlsqlError("polygon: expected a list of [x, y] number pairs") from None
    if poly.ndim != 2 or poly.shape[1] != 2 or not 3 <= len(poly) <= MAX_VERTICES:
        raise AlsqlError(f"polygon: expected 3 to {MAX_VERTICES} [x, y] vertices, got shape {list(poly.shape)}")
    if not np.isfinite(poly).all():
        raise AlsqlError("polygon: every vertex must be a finite number pair")
    return poly


def points_in_polygon(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule: True where ``(x, y)`` is inside ``poly`` ``(V, 2)``."""
    inside = np.zeros(len(x), bool)
    xs, ys = poly[:, 0], poly[:, 1]
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi, xj, yj = xs[i], ys[i], xs[j], ys[j]
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside ^= crosses & (x < at)
        j = i
    return inside


def select_in_polygon(conn: Connection, project: Project, model_id: int, polygon: Any) -> dict[str, np.ndarray]:
    """Items of the model's map inside ``polygon``: ``inside``, ``labeled``, ``queued``, ``unlabeled`` ids."""
    poly = check_polygon(polygon)
    from alsql.models.heads import embedding_model_id  # a head's map is its encoder's

    e = embeddings.c
    (x0, y0), (x1, y1) = poly.min(axis=0), poly.max(axis=0)
    rows = conn.execute(select(e.item_id, e.x, e.y).where(
        e.model_id == embedding_model_id(conn, model_id), e.x.between(float(x0), float(x1)),
        e.y.between(float(y0), float(y1)))
        .order_by(e.item_id)).cursor.fetchall()
    pts = np.fromiter(rows, dtype=[("i", "<i8"), ("x", "<f8"), ("y", "<f8")], count=len(rows))
    inside = pts["i"][points_in_polygon(pts["x"], pts["y"], poly)]
    lab_ids, _ = _labels(conn, project.project_id)
    labeled = np.intersect1d(inside, lab_ids)
    queued = np.setdiff1d(np.intersect1d(inside, _queued(conn, project.project_id)), labeled)
    rest = np.setdiff1d(inside, np.union1d(labeled, queued))
    ok = set()
    for s in range(0, len(rest), 500):
        part = [int(i) for i in rest[s:s + 500]]
        ok.update(conn.execute(select(items.c.item_id).where(items.c.item_id.in_(part), items.c.status == "ok",
                                                             in_scope(project.project_id, items))).scalars())
    unlabeled = np.array(sorted(ok), dtype=np.int64)
    return {"inside": inside, "labeled": labeled, "queued": queued, "unlabeled": unlabeled}


def map_round(engine: Engine, project: Project, model_id: int, polygon: Any) -> dict[str, Any]:
    """A train round (strategy ``map``) of the selectable items inside ``polygon``; raises when none."""
    poly = check_polygon(polygon)
    with write_transaction(engine) as conn:  # decided and written under the write lock
        sel = select_in_polygon(conn, project, model_id, poly)
        ids = sel["unlabeled"]
        if not len(ids):
            raise AlsqlError(f"the selection holds no unlabeled item to label ({len(sel['inside'])} points inside, "
                             f"{len(sel['labeled'])} labeled, {len(sel['queued'])} already in an open round)")
        if len(ids) > MAX_ROUND:
            raise AlsqlError(f"the selection holds {len(ids):,} unlabeled items; a round holds at most {MAX_ROUND:,}: "
                             f"select a smaller region")
        round_id = insert_round(conn, project.project_id, model_id, ids, "map", {
            "polygon": poly.tolist(), "selected": len(ids), "inside": len(sel["inside"]),
            "labeled": len(sel["labeled"]), "queued": len(sel["queued"])})
    return {"round_id": int(round_id), "items": len(ids), "inside": len(sel["inside"]),
            "labeled": len(sel["labeled"]), "queued": len(sel["queued"])}


