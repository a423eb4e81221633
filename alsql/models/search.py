"""Semantic search: the items nearest a text, by cosine similarity, from an encoder's stored vectors.

Where the project's encoder has a text tower (a CLIP-like ``hf:`` model, ``params.encoder.family ==
"clip"``, as ``alsql embed`` records it), ``search(engine, project, text, k)`` embeds the text with
that model's text tower (the same folder or cached model, checked against the encoder's recorded
fingerprint, so text and image vectors share one space) and returns the ``k`` items whose stored
vectors are nearest by cosine similarity, best first (ties by item id).

- Memory: the stored vectors are read in keyset pages of at most ``PAGE_BYTES`` of float32
  (``embeddings`` by ``(model_id, item_id)``, the item conditions correlated per row, so a page
  costs its own rows at any pool size); each page keeps its best ``k`` (``np.argpartition``) and
  merges them into the running best ``k``: one page and ``2k`` candidates in memory, never all
  vectors.
- Which items: the project's scope always; by default the selectable pool (ok, no label in the
  project, not pending in an open round: ``alsql.models.pool.selectable``, what a round may hold);
  ``include_labeled=True`` every ok item of the scope.
- The encoder: ``encoder_model_id`` (an encoder of the project, or a head, which stands for its
  encoder), else the newest encoder of the project with stored vectors and a text tower. One
  without a text tower (``alsql pretrain``'s SimCLR, ViT, DINOv2, audio) is one clear error.
- The text tower (model and tokenizer) is loaded once per process and kept in a small LRU
  (``TOWERS_KEPT``), shared by the CLI and the web app.
- ``search_round``: a train round (strategy ``search``, the query in its params) of the hits that
  are still selectable, decided under the write lock, through the lasso's ``insert_round``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, exists, literal, select

from alsql.catalog import get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import embeddings, items, model_versions
from alsql.schema.scope import in_scope

__all__ = ["Hit", "SearchResult", "search", "search_round", "search_encoder", "check_query", "text_vector",
           "top_k", "MAX_TEXT", "MAX_K", "PAGE_BYTES", "TOWERS_KEPT", "NO_TEXT_TOWER_HINT"]

MAX_TEXT = 500  # characters of a query
MAX_K = 10_000  # hits of one search
PAGE_BYTES = 64 * 2**20  # float32 vectors per page (65,536 rows at 256-d, 21,845 at 768-d)
MAX_PAGE = 65_536
TOWERS_KEPT = 2
NO_TEXT_TOWER_HINT = ("search needs a CLIP-like model, e.g. alsql embed --encoder hf:openai/clip-vit-base-patch32")
_TOWERS: OrderedDict[tuple, tuple[Any, Any, int | None, threading.Lock]] = OrderedDict()
_LOCK = threading.Lock()


@dataclass
class Hit:
    rank: int
    item_id: int
    uri: str
    similarity: float
    x: float | None = None
    y: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "item_id": self.item_id, "uri": self.uri, "similarity": self.similarity,
                "x": self.x, "y": self.y}


@dataclass
class SearchResult:
    project_id: int
    encoder_model_id: int
    spec: str
    query: str
    k: int
    include_labeled: bool = False
    scanned: int = 0  # vectors compared
    hits: list[Hit] = field(default_factory=list)


def check_query(text: Any) -> str:
    """The query text, stripped: 1 to ``MAX_TEXT`` characters, else AlsqlError."""
    t = str(text if text is not None else "").strip()
    if not 1 <= len(t) <= MAX_TEXT:
        raise AlsqlError(f"search text: expected 1 to {MAX_TEXT} characters, got {len(t)}")
    return t


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise AlsqlError(f"--k {k}: expected 1 to {MAX_K:,} hits")
    return int(k)


def _desc(row) -> dict:
    return (row.params or {}).get("encoder") or {}


def _label(row) -> str:
    return _desc(row).get("spec") or row.architecture or "?"


def _no_tower(row) -> AlsqlError:
    return AlsqlError(f"encoder {row.model_id} ({_label(row)}) has no text tower: {NO_TEXT_TOWER_HINT}")


def _has_vectors(conn: Connection, model_id: int) -> bool:
    e = embeddings.c
    return conn.execute(select(e.item_id).where(e.model_id == model_id, e.vector.is_not(None)).limit(1)).first() \
        is not None


def search_encoder(conn: Connection, project_id: int, encoder_model_id: int | None = None):
    """The encoder row to search with (see the module doc); AlsqlError when it has no text tower or no vectors."""
    from alsql.models.heads import embedding_model_id
    from alsql.models.vectors import current_encoder

    mv = model_versions.c
    if encoder_model_id is not None:
        row = conn.execute(select(model_versions).where(mv.model_id == int(encoder_model_id))).first()
        if row is None or int(row.project_id) != int(project_id):
            raise AlsqlError(f"--encoder-model {encoder_model_id}: not a model of project {project_id}; expected "
                             f"an encoder id that `alsql embed` printed")
        own = embedding_model_id(conn, row.model_id)
        if own != row.model_id:  # a head stands for its encoder
            row = conn.execute(select(model_versions).where(mv.model_id == own)).one()
        if _desc(row).get("family") != "clip":
            raise _no_tower(row)
        if not _has_vectors(conn, row.model_id):
            raise AlsqlError(f"encoder {row.model_id} ({_label(row)}) has no stored vectors: run `alsql embed "
                             f"--project {project_id} --encoder {_label(row)}` first")
        return row
    has = exists(select(literal(1)).where(embeddings.c.model_id == mv.model_id))
    for row in conn.execute(select(model_versions).where(mv.project_id == project_id, mv.status == "encoder", has)
                            .order_by(mv.model_id.desc())):
        if _desc(row).get("family") == "clip":
            return row
    newest = current_encoder(conn, project_id)
    if newest is None:
        raise AlsqlError(f"project {project_id} has no stored vectors: run `alsql embed --project {project_id} "
                         f"--encoder hf:NAME_OR_FOLDER` with a CLIP-like model first")
    raise _no_tower(newest)


def _tower(row):
    """``(model, tokenizer, max_length, lock)`` of the encoder's text tower, cached per process (LRU);
    the lock serialises its use (a fast tokenizer refuses concurrent calls from threads)."""
    from alsql.models.foundation import _offline, _quiet_transformers, _resolve, folder_fingerprint, parse_spec

    desc = _desc(row)
    spec, weights, fingerprint = desc.get("spec") or "", desc.get("weights"), desc.get("fingerprint")
    key = (spec, weights, fingerprint)
    with _LOCK:
        hit = _TOWERS.get(key)
        if hit is not None:
            _TOWERS.move_to_end(key)
            return hit
    scheme, name = parse_spec(spec)
    if scheme != "hf":
        raise _no_tower(row)
    _quiet_transformers()
    from transformers import AutoModel, AutoTokenizer

    source, folder = _resolve(spec, os.path.expanduser(weights) if weights else name)
    if fingerprint and folder_fingerprint(folder) != fingerprint:
        raise AlsqlError(f"encoder {row.model_id} ({spec}): the model files in {folder} changed since its vectors "
                         f"were computed (fingerprint differs); expected the same weights: run `alsql embed` "
                         f"again to make a new encoder version")
    local = _offline() or source == folder
    try:
        model = AutoModel.from_pretrained(source, local_files_only=local).eval()
    except Exception as exc:  # noqa: BLE001 - broken or missing weights
        raise AlsqlError(f"encoder {row.model_id} ({spec}): cannot load the model from {folder} "
                         f"({exc.__class__.__name__})") from None
    if not hasattr(model, "get_text_features"):
        raise _no_tower(row)
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except Exception as exc:  # noqa: BLE001
        raise AlsqlError(f"encoder {row.model_id} ({spec}): no tokenizer in {folder} ({exc.__class__.__name__}); "
                         f"expected the tokenizer files saved beside the model") from None
    limit = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)
    made = (model, tok, limit, threading.Lock())
    with _LOCK:
        _TOWERS[key] = made
        _TOWERS.move_to_end(key)
        while len(_TOWERS) > TOWERS_KEPT:
            _TOWERS.popitem(last=False)
    return made


def text_vector(row, text: str) -> np.ndarray:
    """``(D,)`` float32: the text embedded by the encoder's text tower (not normalised)."""
    import torch

    model, tok, limit, lock = _tower(row)
    with lock, torch.no_grad():
        batch = tok([text], padding=True, truncation=True, max_length=limit, return_tensors="pt")
        out = model.get_text_features(**batch)
    out = out if torch.is_tensor(out) else out.pooler_output
    return out[0].float().cpu().numpy().astype(np.float32)


def _pool_clause(project_id: int, include_labeled: bool):
    """A boolean clause on ``embeddings.item_id``, correlated per row: the items a search may return."""
    from alsql.models.pool import selectable

    if not include_labeled:
        return selectable(project_id, embeddings.c.item_id)
    it = items.alias("search_item")
    return exists(select(literal(1)).where(it.c.item_id == embeddings.c.item_id, it.c.status == literal("ok"),
                                           in_scope(project_id, it)))


def _pages(engine: Engine, encoder_id: int, clause, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Keyset pages ``(item_ids, (n, D) float32)`` of the encoder's vectors of the items ``clause`` keeps."""
    from alsql.models.vectors import pages_where

    return pages_where(engine, encoder_id, clause, max(1, min(MAX_PAGE, PAGE_BYTES // (4 * max(1, dim)))))


def top_k(pages, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(item_ids, similarities, vectors compared)``: the ``k`` best cosine similarities to ``query``
    over ``pages`` of ``(ids, vectors)``, best first, ties by item id; memory: one page and 2k."""
    q = np.asarray(query, np.float32).reshape(-1)
    qn = float(np.linalg.norm(q))
    q = q / qn if qn > 0 else q
    best_ids, best_s = np.zeros(0, np.int64), np.zeros(0, np.float32)
    seen = 0
    for ids, vec in pages:
        if vec.shape[1] != len(q):
            raise AlsqlError(f"stored vectors are {vec.shape[1]}-d but the text vector is {len(q)}-d; expected "
                             f"an encoder whose image and text towers share one space")
        seen += len(ids)
        norms = np.linalg.norm(vec, axis=1)
        sims = (vec @ q) / np.where(norms > 0, norms, np.inf)
        ids = np.concatenate([best_ids, ids])
        sims = np.concatenate([best_s, sims.astype(np.float32)])
        if len(sims) > k:
            keep = np.argpartition(-sims, k - 1)[:k]
            ids, sims = ids[keep], sims[keep]
        best_ids, best_s = ids, sims
    order = np.lexsort((best_ids, -best_s))
    return best_ids[order], best_s[order], seen


def _details(conn: Connection, encoder_id: int, ids: list[int]) -> dict[int, tuple[str, Any, Any]]:
    i, e = items.c, embeddings.c
    out: dict[int, tuple[str, Any, Any]] = {}
    for s in range(0, len(ids), 500):
        part = ids[s:s + 500]
        for item_id, uri, x, y in conn.execute(
                select(i.item_id, i.uri, e.x, e.y).select_from(items.join(embeddings, e.item_id == i.item_id))
                .where(e.model_id == encoder_id, i.item_id.in_(part))):
            out[int(item_id)] = (uri, None if x is None else float(x), None if y is None else float(y))
    return out


def search(engine: Engine, project: str | int, text: str, k: int = 50, *, encoder_model_id: int | None = None,
           include_labeled: bool = False) -> SearchResult:
    """The ``k`` items of the project nearest ``text`` by cosine similarity (see the module doc)."""
    text = check_query(text)
    k = _check_k(k)
    with engine.connect() as conn:
        proj = get_project(conn, project)
        row = search_encoder(conn, proj.project_id, encoder_model_id)
    eid = int(row.model_id)
    qv = text_vector(row, text)
    dim = int(_desc(row).get("dim") or len(qv))
    ids, sims, seen = top_k(_pages(engine, eid, _pool_clause(proj.project_id, include_labeled), dim), qv, k)
    res = SearchResult(proj.project_id, eid, _label(row), text, k, include_labeled, seen)
    with engine.connect() as conn:
        det = _details(conn, eid, [int(i) for i in ids])
    for r, (i, s) in enumerate(zip(ids.tolist(), sims.tolist())):
        uri, x, y = det.get(int(i), ("", None, None))
        res.hits.append(Hit(r + 1, int(i), uri, float(s), x, y))
    return res


def search_round(engine: Engine, result: SearchResult, model_id: int | None = None,
                 budget: int | None = None) -> dict[str, Any]:
    """A train round (strategy ``search``) of the first ``budget`` hits (all when None) that are still
    selectable, in rank order, the similarity as their score; AlsqlError when none is."""
    from alsql.models.pool import selectable
    from alsql.loaders.rounds import MAX_ROUND, insert_round

    hits = result.hits[: budget] if budget is not None else result.hits
    if budget is not None and budget < 1:
        raise AlsqlError(f"--budget {budget}: expected a positive number of items")
    if len(hits) > MAX_ROUND:
        raise AlsqlError(f"--budget {len(hits):,}: a round holds at most {MAX_ROUND:,} items")
    with write_transaction(engine) as conn:  # decided and written under the write lock
        still: set[int] = set()
        for s in range(0, len(hits), 500):
            part = [h.item_id for h in hits[s:s + 500]]
            still.update(int(i) for i in conn.execute(select(items.c.item_id).where(
                items.c.item_id.in_(part), selectable(result.project_id, items.c.item_id))).scalars())
        keep = [h for h in hits if h.item_id in still]
        if not keep:
            raise AlsqlError(f"none of the {len(hits)} hits can go into a round (labeled, or already pending in an "
                             f"open round)")
        rid = insert_round(conn, result.project_id, model_id, [h.item_id for h in keep], "search", {
            "query": result.query, "encoder_model_id": result.encoder_model_id, "k": result.k,
            "hits": len(hits), "selected": len(keep), "include_labeled": result.include_labeled,
        }, scores=[h.similarity for h in keep])
    return {"round_id": rid, "items": len(keep), "hits": len(hits), "left_out": len(hits) - len(keep)}
