"""Heads: small models (linear or MLP) trained on an encoder's stored vectors.

A head is a ``model_versions`` row with status ``ready``, architecture ``head:linear`` or
``head:mlp``, ``params.head`` and ``params.encoder_model_id`` (the encoder whose vectors it
reads: a row with status ``encoder``, as ``alsql embed`` or ``alsql pretrain`` make). Its
artifact holds the head's weights (the input standardisation folded into the first layer).

- ``train_head`` reads the vectors of the project's ``training_set`` items (and of
  ``evaluation_set`` for the checkpoint choice and the metrics, weighted by the inclusion
  weights) by keyset pages of a join with ``embeddings`` of the encoder: never the media.
  Labeled items without a vector are left out and counted. Logit-adjusted cross-entropy by
  default (``alsql.models.metrics.logit_adjustment``; ``class_weight`` ``balanced``: the
  class weights) and the best evaluation by balanced accuracy (``selection_key``), as the CNN
  path (``alsql.models.train``).
- ``infer_head`` scores the head's queue (ok items of the project's scope with a vector of
  the encoder and no prediction of the head) by keyset pages of at most ``PAGE_BYTES`` of
  float32 vectors: one matrix product per page, written through ``PredictionWriter``
  (predictions only: a head writes no embeddings and fits no map; the map belongs to the
  encoder). A re-run, or a chunk worker (``claim=True``), scores what is still missing, so
  every item ends with exactly one prediction. Memory: one page plus the writer's buffer.
- ``embedding_model_id``: whose vectors stand for a model (the encoder for a head, else
  the model itself); strategies and the map read vectors through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, insert, literal, select

from alsql.catalog import get_project
from alsql.errors import AlsqlError
from alsql.loaders.pager import fetch_compiled
from alsql.schema import annotations, embeddings, items, model_versions, predictions
from alsql.schema.views import evaluation_set, training_set, unlabeled_pool

__all__ = ["HEADS", "PAGE_BYTES", "embedding_model_id", "is_head", "encoder_with_vectors", "train_head",
           "infer_head", "score_range", "head_pages", "page_rows_for", "labeled_vectors", "badge_vectors",
           "decode_vectors", "mark_scored", "train_round_model"]

HEADS = ("linear", "mlp")  # as alsql.models.head_net.HEADS (torch-free here)
PREFIX = "head:"
ENCODER_STATUS = "encoder"
PAGE_BYTES = 64 * 2**20  # float32 vectors per scoring page (65,536 rows at 256-d, 21,845 at 768-d)
MAX_PAGE = 65_536
MLP_HIDDEN = 256  # as alsql.models.head_net
MLP_DROPOUT = 0.2
LR_FACTOR = 10.0  # a head learns at 10x the network's rate (the frozen-head rule of alsql.models.encoders)


def is_head(architecture: str | None) -> bool:
    return bool(architecture) and str(architecture).startswith(PREFIX)


def embedding_model_id(conn: Connection, model_id: int) -> int:
    """The model whose ``embeddings`` rows stand for ``model_id``: ``params.encoder_model_id`` for a
    head, else ``model_id`` itself (a CNN stores its own vectors)."""
    row = conn.execute(select(model_versions.c.architecture, model_versions.c.params)
                       .where(model_versions.c.model_id == model_id)).first()
    if row is not None and is_head(row.architecture):
        return int((row.params or {})["encoder_model_id"])
    return int(model_id)


def _scope(project_id: int):
    """The project's scope clause on ``items`` (every item when the project has none)."""
    from alsql.schema.scope import in_scope

    return in_scope(project_id, items)


def _vector_dtype(params: dict | None) -> str:
    """The encoder's blob dtype (``alsql.models.vectors.blob_dtype``: float16 unless it says float32)."""
    from alsql.models.vectors import blob_dtype

    return blob_dtype(params)


def decode_vectors(blobs: list, dtype: str = "<f2", dim: int | None = None) -> np.ndarray:
    """Stored vector blobs (all of one width) -> ``(N, D)`` float32."""
    n = len(blobs)
    if not n:
        return np.zeros((0, dim or 0), np.float32)
    raw = b"".join(blobs)  # bytes from either driver: no per-row copy
    width = len(raw) // n
    if width * n != len(raw) or width % np.dtype(dtype).itemsize:
        raise AlsqlError(f"stored vectors of unequal width ({len(raw)} bytes for {n} rows); expected one width")
    return np.frombuffer(raw, dtype=dtype).reshape(n, -1).astype(np.float32)


def encoder_with_vectors(conn: Connection, project_id: int, encoder_model_id: int | None = None):
    """The encoder row to train on: ``encoder_model_id`` (checked: an encoder of the project with
    stored vectors) or the project's newest encoder that has vectors; AlsqlError when none."""
    mv = model_versions.c
    if encoder_model_id is not None:
        row = conn.execute(select(model_versions).where(mv.model_id == int(encoder_model_id))).first()
        if row is None or row.project_id != project_id or row.status != ENCODER_STATUS:
            raise AlsqlError(f"--encoder-model {encoder_model_id}: expected an encoder model of project "
                             f"{project_id} (`alsql embed` or `alsql pretrain` makes one)")
        if conn.execute(select(literal(1)).where(embeddings.c.model_id == row.model_id).limit(1)).first() is None:
            raise AlsqlError(f"--encoder-model {encoder_model_id}: the encoder has no stored embeddings; "
                             f"run `alsql embed --project {project_id}` first")
        return row
    from alsql.models.vectors import current_encoder

    row = current_encoder(conn, project_id)
    if row is None:
        raise AlsqlError(f"project {project_id} has no stored embeddings to train a head on; "
                         f"run `alsql embed --project {project_id}` first")
    return row


def labeled_vectors(bind, project_id: int, encoder_model_id: int, view: str = "training_set",
                    dtype: str = "<f2", page: int = 8192) -> dict[str, np.ndarray]:
    """``item_ids (N,)``, ``class_id (N,)``, ``weight (N,)`` (1 for the training set), ``x (N, D)``
    float32 of the view's labeled items that have a vector of the encoder, keyset-paged by item."""
    v = training_set if view == "training_set" else evaluation_set
    w = v.c.weight if view == "evaluation_set" else literal(1.0)
    q = (select(v.c.item_id, v.c.class_id, w, embeddings.c.vector)
         .select_from(v.join(embeddings, and_(embeddings.c.model_id == bindparam("e"),
                                              embeddings.c.item_id == v.c.item_id)))
         .where(v.c.project_id == bindparam("p"), v.c.item_id > bindparam("last"))
         .order_by(v.c.item_id).limit(bindparam("n")))
    compiled = q.compile(dialect=bind.dialect)
    ids, ys, ws, xs, last = [], [], [], [], -1
    while True:
        rows = fetch_compiled(bind, compiled,
                              {"e": int(encoder_model_id), "p": int(project_id), "last": last, "n": page})
        if rows:
            ids.append(np.array([r[0] for r in rows], np.int64))
            ys.append(np.array([r[1] for r in rows], np.int64))
            ws.append(np.array([1.0 if r[2] is None else r[2] for r in rows], np.float64))
            xs.append(decode_vectors([r[3] for r in rows], dtype))
            last = int(rows[-1][0])
        if len(rows) < page:
            break
    if not ids:
        return {"item_ids": np.zeros(0, np.int64), "class_id": np.zeros(0, np.int64),
                "weight": np.zeros(0), "x": np.zeros((0, 0), np.float32)}
    return {"item_ids": np.concatenate(ids), "class_id": np.concatenate(ys), "weight": np.concatenate(ws),
            "x": np.concatenate(xs)}


def pool_vectors(bind, project_id: int, encoder_model_id: int, dtype: str = "<f2", n: int = 1024, seed: int = 0,
                 runs: int = 16) -> np.ndarray:
    """``(M, D)`` float32: up to ``n`` stored vectors of the encoder for unlabeled pool items, read
    as ``runs`` short keyset runs from random keys (the first from the smallest), so the sample
    spreads over the key range without a scan of the pool; a pool too small to fill them is read
    whole."""
    from alsql.loaders.pager import key_bounds

    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return pool_vectors(conn, project_id, encoder_model_id, dtype, n, seed, runs)
    lo, hi = key_bounds(bind)
    if lo is None:
        return np.zeros((0, 0), np.float32)
    u = unlabeled_pool
    q = (select(u.c.item_id, embeddings.c.vector)
         .select_from(u.join(embeddings, and_(embeddings.c.model_id == bindparam("e"),
                                              embeddings.c.item_id == u.c.item_id)))
         .where(u.c.project_id == bindparam("p"), u.c.item_id >= bindparam("start"))
         .order_by(u.c.item_id).limit(bindparam("n")))
    compiled = q.compile(dialect=bind.dialect)
    rng = np.random.default_rng(seed)
    starts = [int(lo)] + sorted(int(v) for v in rng.integers(int(lo), int(hi) + 1, max(0, runs - 1)))
    per = -(-n // max(1, len(starts)))
    got: dict[int, object] = {}

    def run(start: int, rows: int) -> int | None:
        page = fetch_compiled(bind, compiled,
                              {"e": int(encoder_model_id), "p": int(project_id), "start": start, "n": rows})
        for item_id, vec in page:
            got.setdefault(int(item_id), vec)
        return int(page[-1][0]) + 1 if len(page) == rows else None

    for start in starts:
        run(start, per)
    nxt = int(lo)  # runs that met the end of the pool left the sample short: a plain pass from the start fills it
    while len(got) < n and nxt is not None:
        nxt = run(nxt, min(8192, 4 * per))
    if not got:
        return np.zeros((0, 0), np.float32)
    return decode_vectors(list(got.values())[:n], dtype)


def train_head(engine: Engine, project: str | int, *, head: str = "linear", encoder_model_id: int | None = None,
               epochs: int = 30, seed: int = 0, say: Callable[[str], None] | None = print, lr: float = 2e-3,
               batch_size: int = 64, min_steps: int = 200, max_epochs: int = 300, patience: int = 8,
               class_weight: str = "logit_adjust", hidden: int = MLP_HIDDEN, dropout: float = MLP_DROPOUT,
               name: str | None = None, artifacts: str | None = None, why: str | None = None,
               choice: dict | None = None, collapse_guard: bool = True) -> int:
    """Train a ``head`` on the encoder's stored vectors of ``training_set``; return the new model id.

    ``lr`` is the network rate of ``alsql train``: a head learns at ``LR_FACTOR`` times it.
    ``why`` (recorded in ``params["init"]``, as a network's start is): the reason a head was chosen;
    ``choice``: the measured head-or-fine-tune choice (``alsql.models.choose.Choice.as_params``),
    recorded as ``params["init"]["choice"]``. ``collapse_guard``: as ``alsql train`` does, a head
    that predicts one class for 95 % of a sample of the pool's stored vectors has its decision
    aligned to the labels' class shares (``alsql.models.align``; ``params["collapse_guard"]``).
    Epochs: at least ``epochs`` and enough for ``min_steps`` steps (at most ``max_epochs``),
    stopping after ``patience`` epochs without a better evaluation once ``epochs`` are run.
    """
    import torch

    from alsql.config import get_settings
    from alsql.db import write_transaction
    from alsql.models.artifacts import artifact_uri, save_object
    from alsql.models.head_net import HeadNet, fit_head
    from alsql.models.metrics import class_weights, imbalance_warnings, logit_adjustment, metrics_dict

    say = say or (lambda _m: None)
    if head not in HEADS:
        raise AlsqlError(f"--head {head!r}: expected one of {', '.join(HEADS)}")
    from alsql.models.fit import CLASS_WEIGHTS

    if class_weight not in CLASS_WEIGHTS:
        raise AlsqlError(f"--class-weight {class_weight!r}: expected {', '.join(CLASS_WEIGHTS)}")
    t0 = time.monotonic()
    with engine.connect() as conn:
        proj = get_project(conn, project)
        enc = encoder_with_vectors(conn, proj.project_id, encoder_model_id)
        newest = conn.execute(select(func.max(annotations.c.annotation_id))
                              .where(annotations.c.project_id == proj.project_id)).scalar()
        labels = conn.execute(select(func.count()).select_from(training_set)
                              .where(training_set.c.project_id == proj.project_id)).scalar_one()
    dtype = _vector_dtype(enc.params)
    tr = labeled_vectors(engine, proj.project_id, enc.model_id, "training_set", dtype)
    n, c = len(tr["item_ids"]), len(proj.classes)
    if n == 0:
        raise AlsqlError(
            f"project {proj.name!r}: none of its {labels} training labels has a vector of encoder {enc.model_id}; "
            + ("label items first (`alsql labels import`, the web app, or `alsql loop`)" if not labels else
               f"run `alsql embed --project {proj.name}` to embed the labeled items"))
    bad = np.unique(tr["class_id"][(tr["class_id"] < 0) | (tr["class_id"] >= c)])
    if len(bad):
        raise AlsqlError(f"project {proj.name!r}: training_set has class ids {bad.tolist()}; expected 0..{c - 1}")
    ev = labeled_vectors(engine, proj.project_id, enc.model_id, "evaluation_set", dtype)
    ev = {k: v[(ev["class_id"] >= 0) & (ev["class_id"] < c)] for k, v in ev.items()} if len(ev["item_ids"]) else ev
    counts = np.bincount(tr["class_id"], minlength=c).tolist()
    cw = class_weights(counts) if class_weight == "balanced" else None
    adjust = logit_adjustment(counts) if class_weight == "logit_adjust" else None
    x = torch.from_numpy(tr["x"])
    mean = x.mean(0)
    scale = float((x - mean).pow(2).mean().sqrt()) or 1.0
    torch.manual_seed(seed)
    net = HeadNet(head, x.shape[1], c, hidden, dropout)
    ev_t = None
    if len(ev["item_ids"]):
        ev_t = {"x": (torch.from_numpy(ev["x"]) - mean) / scale, "y": torch.from_numpy(ev["class_id"]),
                "w": ev["weight"]}
    steps = -(-n // batch_size)
    planned = min(max_epochs, max(epochs, -(-min_steps // steps)))
    fit = fit_head(net, (x - mean) / scale, torch.from_numpy(tr["class_id"]), ev_t, cw, lr=lr * LR_FACTOR,
               batch_size=batch_size, epochs=planned, patience=patience, min_epochs=epochs, seed=seed,
               adjust=adjust)
    net.fold(mean, scale)
    guard = None
    if collapse_guard:
        from alsql.models.align import GUARD_SAMPLE, guard_line, guard_record, logits_of

        pool = pool_vectors(engine, proj.project_id, enc.model_id, dtype, GUARD_SAMPLE, seed)
        if len(pool):
            guard = guard_record(net, logits_of(net, torch.from_numpy(pool)), counts, proj.classes)
            if guard["acted"]:
                say(guard_line(guard, proj.classes))
                if ev_t is not None and fit.cm is not None:  # the figures recorded are the aligned decision's
                    from dataclasses import replace

                    from alsql.models.align import decide
                    from alsql.models.metrics import confusion_matrix

                    with torch.no_grad():
                        pred = decide(net, net(torch.from_numpy(ev["x"]))).numpy()
                    guard["evaluation_before"] = metrics_dict(fit.cm, proj.classes)
                    fit = replace(fit, cm=confusion_matrix(ev["class_id"], pred, c, ev["weight"]))
        else:
            guard = {"acted": False, "sample": 0, "why": "no unlabeled pool item has a vector of the encoder"}
    if fit.cm is not None:
        metrics = metrics_dict(fit.cm, proj.classes)
        metrics["evaluated"] = len(ev["item_ids"])
        metrics["weighted"] = bool((ev["weight"] != 1.0).any())
        warnings = imbalance_warnings(fit.cm, proj.classes)
    else:
        metrics = {"accuracy": None, "balanced_accuracy": None, "macro_f1": None, "per_class_recall": {},
                   "evaluated": 0}
        warnings = []
    metrics.update(warnings=warnings, epochs=fit.epochs, best_epoch=fit.best_epoch,
                   final_train_loss=round(fit.train_loss, 6), seconds=round(time.monotonic() - t0, 3))
    params = {
        "kind": "head", "head": head, "encoder_model_id": int(enc.model_id), "encoder": enc.architecture,
        "dim": int(x.shape[1]), "num_classes": c, "hidden": hidden if head == "mlp" else None,
        "dropout": dropout if head == "mlp" else None, "seed": seed, "lr": lr * LR_FACTOR, "batch_size": batch_size,
        "epochs": epochs, "min_steps": min_steps, "patience": patience, "class_weight": class_weight,
        "class_weights": None if cw is None else dict(zip(proj.classes, cw)),
        "logit_adjustment": None if adjust is None else dict(zip(proj.classes, adjust)),
        "label_counts": dict(zip(proj.classes, counts)), "labels_without_vector": int(labels - n),
        "collapse_guard": guard,
        # As a network's start is recorded: the encoder, frozen (only the head learns), and why.
        "init": {"init": "pretrained", "encoder_model_id": int(enc.model_id), "head": "frozen",
                 "why": why or f"--head {head}: a {head} head on the encoder's stored vectors"}
        | ({"choice": choice} if choice is not None else {}),
    }
    root = artifacts or get_settings().artifacts
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    uri = artifact_uri(root, f"project-{proj.project_id}", f"head-{head}-{stamp}.pt")
    save_object(uri, {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                      "meta": {"head": head, "dim": int(x.shape[1]), "num_classes": c, "hidden": hidden,
                               "dropout": dropout, "classes": list(proj.classes),
                               "decision_offsets": guard["offsets"] if guard and guard.get("acted") else None}})
    with write_transaction(engine) as conn:
        model_id = conn.execute(insert(model_versions).values(
            project_id=proj.project_id, name=name, architecture=PREFIX + head, params=params, label_count=n,
            trained_on_annotation_id=newest, metrics=metrics, artifact_uri=uri, status="ready",
        ).returning(model_versions.c.model_id)).scalar_one()
    if labels > n:
        say(f"{labels - n} of {labels} training labels have no vector of encoder {enc.model_id} and were left out "
            f"(`alsql embed` embeds them)")
    return int(model_id)


def _queue_query(project_id: int, bounded: bool):
    """The head's queue page: ok items of the project's scope with a vector of encoder ``e`` and
    no prediction of head ``h``, ``item_id > last [<= hi]``, in key order, ``n`` at most."""
    e = embeddings.c
    p = predictions.c
    # The window's bounds on predictions too: a new head has no statistics, and an unbounded
    # anti-join would re-scan every prediction written so far at every page (PostgreSQL).
    done = exists().where(p.model_id == bindparam("h"), p.item_id == e.item_id, p.item_id > bindparam("last"))
    if bounded:
        done = done.where(p.item_id <= bindparam("hi"))
    # The key range on both tables: a planner that starts from items (the scope clause hides
    # how few rows pass) then reads a range of its key instead of every item, every page.
    q = (select(e.item_id, e.vector).select_from(embeddings.join(items, items.c.item_id == e.item_id))
         .where(e.model_id == bindparam("e"), e.item_id > bindparam("last"), items.c.item_id > bindparam("last"),
                items.c.status == literal("ok"), ~done, _scope(project_id)))
    if bounded:
        q = q.where(e.item_id <= bindparam("hi"), items.c.item_id <= bindparam("hi"))
    return q.order_by(e.item_id).limit(bindparam("n"))


def page_rows_for(dim: int) -> int:
    """Vectors per scoring page: ``PAGE_BYTES`` of float32, at most ``MAX_PAGE``, at least 1,024."""
    return int(max(1024, min(MAX_PAGE, PAGE_BYTES // (4 * max(1, dim)))))


def head_pages(bind, project_id: int, head_id: int, encoder_id: int, dtype: str = "<f2", page: int = MAX_PAGE,
               lo: int | None = None, hi: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(item_ids (P,), vectors (P, D) float32)`` pages of the head's queue (``lo < item_id <= hi``).

    Each query reads one window of ``page`` keys (``last < item_id <= last + page``) of the
    encoder's key range, so no page reads the rest of the key space (a planner that starts from
    ``items`` and sorts would, at every page); a window holds at most ``page`` rows."""
    if lo is None or hi is None:
        q = select(func.min(embeddings.c.item_id), func.max(embeddings.c.item_id)).where(
            embeddings.c.model_id == int(encoder_id))
        if isinstance(bind, Engine):
            with bind.connect() as conn:
                first, end = conn.execute(q).one()
        else:
            first, end = bind.execute(q).one()
        if first is None:
            return
        lo = int(first) - 1 if lo is None else max(int(lo), int(first) - 1)
        hi = int(end) if hi is None else min(int(hi), int(end))
    compiled = _queue_query(project_id, True).compile(dialect=bind.dialect)
    values = {"e": int(encoder_id), "h": int(head_id), "n": int(page)}
    last = int(lo)
    while last < hi:
        values["last"], values["hi"] = last, min(int(hi), last + int(page))
        rows = fetch_compiled(bind, compiled, values)
        if rows:
            yield np.fromiter((r[0] for r in rows), np.int64, len(rows)), decode_vectors([r[1] for r in rows], dtype)
        last = values["hi"]


def score_range(engine: Engine, model_id: int, lo: int | None = None, hi: int | None = None, *, bald: int = 0,
                page: int | None = None, analyze: bool = True, net: HeadNet | None = None, row=None) -> int:
    """Score the head's queue in ``lo < item_id <= hi`` (None: unbounded) and write its predictions;
    return the items written. Each page is written before the next is scored. On PostgreSQL and
    SQL Server the page after it is read meanwhile (one reader thread: two pages in memory at
    most); on SQLite pages are read in turn: its driver takes and drops the GIL at every row
    stepped, so a reader thread beside the writer's ``executemany`` slowed both (5M items,
    128-d: 65 s a round with the thread, 44 s without; ``benchmarks/rounds.py``)."""
    from alsql.loaders.writer import PredictionWriter
    from alsql.models.head_net import check_bald, load_head, score_vectors
    from alsql.models.predict import mc_seed_for, write_scored

    if net is None or row is None:
        net, row = load_head(engine, model_id)
    check_bald(net, model_id, bald)
    with engine.connect() as conn:
        enc = conn.execute(select(model_versions.c.params).where(
            model_versions.c.model_id == row.params["encoder_model_id"])).first()
    dtype = _vector_dtype(enc.params if enc is not None else None)
    page = page or page_rows_for(int(row.params.get("dim") or net.fc.in_features))
    written = 0
    pages = head_pages(engine, row.project_id, model_id, row.params["encoder_model_id"], dtype, page, lo, hi)
    with PredictionWriter(engine, model_id, kind="predictions", buffer_rows=page, flush_seconds=None,
                          analyze=analyze) as pw, ThreadPoolExecutor(1) as reader:
        ahead = None if engine.dialect.name == "sqlite" else reader.submit(next, pages, None)
        while (got := (next(pages, None) if ahead is None else ahead.result())) is not None:
            if ahead is not None:  # the next page is read while this one is scored and written
                ahead = reader.submit(next, pages, None)
            ids, x = got
            out = score_vectors(net, x, bald, mc_seed_for(model_id, ids[0]) if bald else None)
            write_scored(pw, ids, out)  # class_id: the collapse guard's decision
            pw.flush()
            written += len(ids)
    return written


def infer_head(engine: Engine, project: str | int, model_id: int | None = None, *, claim: bool = False,
               bald: int = 0, page: int | None = None, **claim_kw):
    """Score every in-scope ok item that has a vector of the head's encoder and no prediction of
    the head; return an ``alsql.models.infer.InferReport`` (``map`` None: the map is the encoder's).

    Sharing the work between processes by chunk leases is ``alsql.pipelines.claims.run_claims``
    (``alsql infer --claim``), which scores a head's chunks with ``score_range``.
    """
    from alsql.models.head_net import load_head
    from alsql.models.infer import InferReport
    from alsql.models.pool import require_model

    if bald < 0 or bald > 1000:
        raise AlsqlError(f"--bald {bald}: expected a number of MC-dropout passes from 0 to 1000")
    with engine.connect() as conn:
        proj = get_project(conn, project)
        model_id = require_model(conn, proj.project_id, model_id)
    if claim or claim_kw:
        # Chunk leases live a layer up (models never import pipelines): ``alsql infer --claim``
        # calls ``alsql.pipelines.claims.run_claims``, which routes a head to ``score_range``.
        raise AlsqlError("infer_head(claim=True): shared scoring runs through "
                         "alsql.pipelines.claims.run_claims (alsql infer --claim)")
    net, row = load_head(engine, model_id)
    n = score_range(engine, model_id, bald=bald, page=page, net=net, row=row)
    if n:
        mark_scored(engine, model_id)
    return InferReport(model_id, items=n, bald=bald > 0)


def mark_scored(engine: Engine, model_id: int) -> None:
    """Record ``params["scored_at"]`` on the head: the map's version follows it (``alsql.models.mapfile``)."""
    from sqlalchemy import update

    from alsql.db import write_transaction

    with write_transaction(engine) as conn:
        params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == model_id)).scalar()
        conn.execute(update(model_versions).where(model_versions.c.model_id == model_id).values(
            params=dict(params or {}) | {"scored_at": time.time()}))


def badge_vectors(conn: Connection, model_id: int, vectors: np.ndarray) -> np.ndarray:
    """The vectors whose outer product with ``p - onehot`` is BADGE's gradient embedding for
    ``model_id``: the encoder vectors themselves for a linear head (its last layer reads them),
    the hidden layer for an MLP head, ``vectors`` unchanged for any other model."""
    row = conn.execute(select(model_versions.c.architecture).where(model_versions.c.model_id == model_id)).first()
    if row is None or row.architecture != PREFIX + "mlp" or not len(vectors):
        return vectors
    import torch

    from alsql.models.head_net import load_head

    net, _row = load_head(conn.engine, model_id)
    with torch.no_grad():
        return net.features(torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))).numpy()


FOUNDATION_WHY = "a foundation encoder cannot be fine-tuned here: a head on its stored vectors"


def train_round_model(engine: Engine, project: str | int, cfg=None, *, init: str = "auto", head: str = "auto",
                      head_kind: str = "linear", grayscale: bool = False, say: Callable[[str], None] | None = None,
                      **train_kw) -> int:
    """The model of one round (``alsql loop``, the demo, the watcher's train step); its id.

    A head on stored vectors (``train_head``, of ``head_kind``) when ``head`` is ``linear`` or
    ``mlp``; with ``head`` ``auto`` and ``init`` not ``random``, when the project has an encoder
    with stored vectors (``alsql embed``, ``alsql pretrain``; ``encoder_with_vectors``):

    - an ``alsql pretrain`` encoder (architecture ``<arch>+simclr``): its stored vectors are its
      penultimate features, so the measured choice of ``alsql train --head auto``
      (``alsql.models.choose.measure_sources``, measured once, in ``train_and_record``) decides:
      ``head`` trains ``train_head`` on the stored vectors (the choice recorded in
      ``params["init"]``), fine-tune or random trains the network as measured. Where nothing
      can be measured (torchrun, labels not held in memory) the fixed rule
      ``alsql.models.encoders.choose_head`` decides, as for ``alsql train``.
    - any other encoder (a foundation model, ``hf:`` / ``torchvision:``): the head, always
      (``FOUNDATION_WHY``): it cannot be fine-tuned here, and its head-versus-random-network
      choice is not measured (the random network's arm needs the decoded items in the order of
      the stored vectors).

    Otherwise the network (``alsql.models.train.train_and_record`` with ``cfg``, ``init``,
    ``head``, ``grayscale`` and ``train_kw``). ``cfg`` (a ``TrainConfig``) gives the head its seed,
    epochs, steps, batch size, rate, patience and class weighting too.
    """
    from alsql.models.fit import TrainConfig

    cfg = cfg or TrainConfig()
    kw = {"seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
          "lr": cfg.lr, "patience": cfg.patience, "class_weight": cfg.class_weight, "say": say,
          "collapse_guard": cfg.collapse_guard}
    if cfg.min_steps is not None:  # None: the head's own default, not the networks' by media kind
        kw["min_steps"] = cfg.min_steps
    if "artifacts" in train_kw:
        kw["artifacts"] = train_kw["artifacts"]
    if "name" in train_kw:
        kw["name"] = train_kw["name"]
    if head in HEADS:
        return train_head(engine, project, head=head, **kw)
    with engine.connect() as conn:
        proj = get_project(conn, project)
        enc = None
        if head == "auto" and init != "random":
            try:
                enc = encoder_with_vectors(conn, proj.project_id)
            except AlsqlError:  # no stored vectors: the network
                enc = None
        n = conn.execute(select(func.count()).select_from(training_set)
                         .where(training_set.c.project_id == proj.project_id)).scalar_one()
    if enc is not None and n and not str(enc.architecture or "").endswith("+simclr"):
        if say is not None:
            say(f"{FOUNDATION_WHY}: a {head_kind} head on the stored vectors of encoder {enc.model_id}")
        return train_head(engine, proj.project_id, head=head_kind, encoder_model_id=enc.model_id,
                          why=FOUNDATION_WHY, **kw)

    def on_head(row, choice, why: str) -> int | None:
        """The start picked a frozen encoder: a head on its stored vectors when it is the one with vectors."""
        if enc is None or int(row.model_id) != int(enc.model_id):
            return None  # the encoder measured has no stored vectors: the network with a frozen encoder
        if say is not None:
            say(f"{why}: a {head_kind} head on the stored vectors of encoder {enc.model_id}")
        return train_head(engine, proj.project_id, head=head_kind, encoder_model_id=enc.model_id,
                          why=f"measured: {choice.why}" if choice is not None else why,
                          choice=choice.as_params() if choice is not None else None, **kw)

    from alsql.models.train import train_and_record

    return train_and_record(engine, proj.project_id, cfg, init=init, head=head, grayscale=grayscale, say=say,
                            on_head=on_head if enc is not None else None, **train_kw).model_id
