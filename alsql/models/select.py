"""``create_round``: a strategy picks ``budget`` items; they become a round to label.

What is written: one ``rounds`` row (project, model, strategy, purpose, budget,
params with the seed and candidate count) and one ``round_items`` row per pick
(``rank`` 0.., ``item_id``, ``score``: higher = more worth labeling, status pending).

Never selected: labeled items, items pending in an open round of the project, items
whose status is not ok. Evaluation rounds are random (the default) or ``active``; the
``training_set`` view keeps their labels out of training either way. Each evaluation
round item stores its inclusion probability and weight (``alsql.models.active_eval``):
a random round ``K / N`` and 1 (N: the selectable pool), an active round ``pi_i`` from
the model's uncertainty about the estimand of ``mart`` and ``(K / N) / pi_i``, so
estimates weighted by them stay unbiased. Train rounds store NULL for both.

Cost: predictions carry their clustered key ``(model_id, item_id)`` only. A scalar
strategy is one SQL query per attempt: the model's key range read with a top-``m``
sort (``ORDER BY <score>, item_id LIMIT m``, bounded memory), then the selectable
ones of those ``m`` kept, ``ORDER BY ... LIMIT k``; ``m`` starts at ``2k + 1000`` and
grows eightfold only when labeled or pending items fill the top. Random probes random
keys (``alsql.models.pool.probe_sample``: bounded time, seeded), and small pools are a
streamed reservoir (``O(k)``). Batch strategies read a bounded candidate set of
``M = max(budget, candidates)`` rows (default ``DEFAULT_CANDIDATES`` = 20,000): the
top ``M`` by their pre-filter score (cluster_margin: margin), or a seeded uniform
sample of the model's selectable predictions (coreset, badge, typiclust); when the
pool holds at most ``M`` items every one is a candidate, so picks do not depend on
how the sample was drawn. Labeled embeddings are read by the labeled ids, in chunks.
"""

from __future__ import annotations

import numpy as np
from collections.abc import Callable

from sqlalchemy import Engine, exists, func, insert, select

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.models.active_eval import active_draw, pool_size, uniform_draw_columns
from alsql.models.pool import (
    labeled_embedding_chunks,
    latest_model_id,
    probe_sample,
    read_candidates,
    read_vectors_of,
    require_model,
    selectable,
    vectors_model_id,
)
from alsql.models.strategies import Candidates, Strategy, get_strategy
from alsql.schema import classes, embeddings, items, model_versions, predictions, projects, round_items, rounds
from alsql.schema.tables import ROUND_PURPOSES
from alsql.schema.views import training_set

__all__ = ["create_round", "select_items", "scalar_query", "cold_start_encoder", "cold_start_items",
           "labeled_counts", "DEFAULT_CANDIDATES", "ACTIVE", "COLD_START"]

DEFAULT_CANDIDATES = 20_000
MAX_BUDGET = 1_000_000
# The evaluation-only strategy: a draw with probabilities from the model's uncertainty.
ACTIVE = "active"
# What picks the first labels when the project has an encoder's vectors but no trained model.
COLD_START = "typiclust"


def network_class(conn, model_id: int):
    """The ``predictions`` column that holds the network's own predicted class of ``model_id``'s rows:
    ``network_class_id`` where the collapse guard moved the model's decision (``alsql.models.align``:
    its params record it, and its rows carry the network's argmax), else ``class_id``. Read once per
    selection (the model's params and its first row), so each per-class query filters one plain
    column. The per-class strategies rank by the network's own margins, so they group by the
    network's own classes (measured: ``benchmarks/reports/label_efficiency_rare_short.json``,
    ``alsql.models.align``)."""
    params = conn.execute(select(model_versions.c.params).where(model_versions.c.model_id == model_id)).scalar()
    guard = (params or {}).get("collapse_guard")
    if not (isinstance(guard, dict) and guard.get("acted")):
        return predictions.c.class_id
    first = conn.execute(select(predictions.c.network_class_id).where(predictions.c.model_id == model_id)
                         .order_by(predictions.c.item_id).limit(1)).first()
    return predictions.c.class_id if first is None or first[0] is None else predictions.c.network_class_id


def scalar_query(project_id: int, model_id: int, s: Strategy, k: int, m: int | None,
                 class_id: int | None = None, class_col=None):
    """The top ``k`` selectable items of ``model_id`` by ``s.column`` among its top ``m`` (None: all).

    The inner query reads the model's key range of ``predictions`` (those of ``class_id``
    when given, in ``class_col``: ``network_class``'s column, default ``class_id``) with a top-``m``
    sort; the outer keeps the selectable ones, in the same order (score, item id).
    """
    col = predictions.c[s.column]
    where = [predictions.c.model_id == model_id, col.is_not(None)]
    if class_id is not None:
        where.append((predictions.c.class_id if class_col is None else class_col) == class_id)
    inner = select(predictions.c.item_id, col.label("score")).where(*where).order_by(col.desc() if s.descending else col.asc(), predictions.c.item_id)
    if m is not None:
        inner = inner.limit(m)
    top = inner.subquery("ranked")
    return (
        select(top.c.item_id, top.c.score)
        .where(selectable(project_id, top.c.item_id))
        .order_by(top.c.score.desc() if s.descending else top.c.score.asc(), top.c.item_id)
        .limit(k)
    )


def _scalar(conn, project_id: int, model_id: int, s: Strategy, k: int, class_id: int | None = None,
            class_col=None):
    col = predictions.c[s.column]
    m: int | None = 2 * k + 1000
    scored = None
    while True:
        rows = conn.execute(scalar_query(project_id, model_id, s, k, m, class_id, class_col)).all()
        if len(rows) >= k or m is None:
            break
        if scored is None:  # labeled or pending items filled the top m: were there more rows?
            where = [predictions.c.model_id == model_id, col.is_not(None)]
            if class_id is not None:
                where.append((predictions.c.class_id if class_col is None else class_col) == class_id)
            scored = conn.execute(select(func.count()).select_from(predictions).where(*where)).scalar_one()
        if m >= scored:
            break
        m = None if 8 * m >= scored else 8 * m
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vals = np.array([r[1] for r in rows], dtype=np.float64)
    if not len(ids) and class_id is None:
        has_any = conn.execute(
            select(func.count()).select_from(
                select(predictions.c.item_id).where(predictions.c.model_id == model_id, col.is_not(None)).limit(1).subquery()
            )
        ).scalar()
        if not has_any:
            hint = "`alsql infer --bald 10`" if s.column == "bald" else "`alsql infer`"
            raise AlsqlError(f"strategy {s.name!r}: model {model_id} has no stored {s.column} scores; run {hint}")
    return ids, (vals if s.descending else 1.0 - vals)


def labeled_counts(conn, project_id: int) -> np.ndarray:
    """``(C,)`` int64: the project's training labels per class id (0 .. the largest class id)."""
    n = conn.execute(select(func.max(classes.c.class_id)).where(classes.c.project_id == project_id)).scalar()
    out = np.zeros(int(n or 0) + 1, dtype=np.int64)
    for cid, count in conn.execute(
        select(training_set.c.class_id, func.count()).where(training_set.c.project_id == project_id)
        .group_by(training_set.c.class_id)
    ):
        if cid is not None and 0 <= int(cid) < len(out):
            out[int(cid)] = int(count)
    return out


def _per_class(conn, project_id: int, model_id: int, s: Strategy, k: int, seed: int):
    """One top-``k`` query per class by ``s.column`` (at most ``C * k`` rows), then ``s.select``
    (with the training labels per class when the strategy needs ``counts``)."""
    cids = conn.execute(select(classes.c.class_id).where(classes.c.project_id == project_id)
                        .order_by(classes.c.class_id)).scalars().all()
    col = network_class(conn, model_id)
    ids, vals, cls = [], [], []
    for cid in cids:
        i, v = _scalar(conn, project_id, model_id, s, k, class_id=int(cid), class_col=col)
        ids.append(i)
        vals.append(v if s.descending else 1.0 - v)
        cls.append(np.full(len(i), int(cid), dtype=np.int64))
    item_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    if not len(item_ids):
        _scalar(conn, project_id, model_id, s, k)  # names what is missing when the model has no scores
        return np.zeros(0, np.int64), np.zeros(0)
    order = np.argsort(item_ids, kind="stable")
    cands = Candidates(item_ids[order], scores={s.column: np.concatenate(vals)[order],
                                                "class_id": np.concatenate(cls)[order]},
                       labeled_counts=labeled_counts(conn, project_id) if "counts" in s.needs else None)
    idx, score = s.select(cands, k, np.random.default_rng(seed))
    return cands.item_ids[idx], score


def _batch(conn, project_id: int, model_id: int, s: Strategy, k: int, seed: int, candidates: int,
           vectors_id: int | None = None):
    """``vectors_id``: the model whose stored vectors are read (None: the model's, or its encoder's
    for a head); a cold start passes an encoder with ``model_id`` None (no predictions read)."""
    m = max(k, candidates)
    if model_id is None:  # the cold start: an encoder's vectors alone
        ids = probe_sample(conn, project_id, m, seed, vectors_id, vectors=True)
        item_ids, vecs = read_vectors_of(conn, vectors_id, ids)
        data = {"item_ids": item_ids, "embeddings": vecs}
    else:
        vectors_id = vectors_model_id(conn, model_id) if vectors_id is None else vectors_id
        if s.prefilter:
            pre = get_strategy(s.prefilter)
            ids, _ = _scalar(conn, project_id, model_id, pre, m)
        else:
            ids = probe_sample(conn, project_id, m, seed, model_id)
        data = read_candidates(conn, model_id, ids, "probs" in s.needs, "embeddings" in s.needs, vectors_id)
        if s.name == "badge" and vectors_id != model_id:  # a head: its last layer's input, not the encoder's
            from alsql.models.heads import badge_vectors

            data["embeddings"] = badge_vectors(conn, model_id, data["embeddings"])
    labeled, count = None, 0
    if "labeled" in s.needs:
        count = conn.execute(
            select(func.count()).select_from(training_set).where(training_set.c.project_id == project_id)
        ).scalar_one()
        if count:
            def labeled():
                with conn.engine.connect() as c2:
                    yield from labeled_embedding_chunks(c2, project_id, vectors_id)
    by_class = None
    if "labeled_by_class" in s.needs:
        def by_class(class_ids: list[int]):
            with conn.engine.connect() as c2:
                yield from labeled_embedding_chunks(c2, project_id, vectors_id, classes=class_ids)
    cands = Candidates(
        data["item_ids"], data.get("probs"), data.get("embeddings"),
        {c: data[c] for c in ("confidence", "margin", "entropy", "bald") if c in data}, labeled, count,
        labeled_counts=labeled_counts(conn, project_id) if "counts" in s.needs else None,
        labeled_by_class=by_class,
    )
    if len(cands) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    idx, score = s.select(cands, k, np.random.default_rng(seed))
    return cands.item_ids[idx], score


def cold_start_encoder(conn, project_id: int) -> int | None:
    """The encoder whose stored vectors a cold start reads, or None.

    ``alsql.models.vectors.current_encoder`` where that module ships, else the newest
    encoder row (status ``encoder``) of the project with at least one stored vector.
    """
    try:
        from alsql.models.vectors import current_encoder
    except ImportError:
        has = exists(select(embeddings.c.item_id).where(embeddings.c.model_id == model_versions.c.model_id))
        return conn.execute(select(func.max(model_versions.c.model_id)).where(
            model_versions.c.project_id == project_id, model_versions.c.status == "encoder", has)).scalar()
    row = current_encoder(conn, project_id)
    return None if row is None else int(row.model_id)


def cold_start_items(engine: Engine, project_id: int, budget: int, seed: int, encoder_model_id: int,
                     candidates: int = DEFAULT_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """TypiClust (``COLD_START``) on a seeded sample of ``max(budget, candidates)`` selectable
    items' vectors of ``encoder_model_id``: ``(item_ids, typicality)``."""
    s = get_strategy(COLD_START)
    with engine.connect() as conn:
        return _batch(conn, project_id, None, s, budget, seed, candidates, vectors_id=encoder_model_id)


def select_items(engine: Engine, project_id: int, strategy: str, budget: int,
                 model_id: int | None = None, seed: int = 0,
                 candidates: int = DEFAULT_CANDIDATES) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Rank ``budget`` selectable items by ``strategy``: ``(item_ids, scores, model_id)``.

    ``candidates``: the batch strategies' candidate count ``M`` (at least ``budget``);
    memory and time of a batch strategy grow with ``M``, not with the pool.
    """
    s = get_strategy(strategy)
    with engine.connect() as conn:
        if s.kind == "random":
            ids = probe_sample(conn, project_id, budget, seed)
            return ids, np.zeros(len(ids)), model_id
        model_id = require_model(conn, project_id, model_id)
        if s.kind == "scalar":
            ids, score = _scalar(conn, project_id, model_id, s, budget)
        elif s.kind == "per_class":
            ids, score = _per_class(conn, project_id, model_id, s, budget, seed)
        else:
            ids, score = _batch(conn, project_id, model_id, s, budget, seed, candidates)
    return ids, score, model_id


def create_round(engine: Engine, project_id: int, strategy: str, budget: int,
                 purpose: str = "train", model_id: int | None = None,
                 seed: int | None = None, candidates: int = DEFAULT_CANDIDATES, mart: str | None = None,
                 say: Callable[[str], None] | None = None) -> int:
    """Create a round of up to ``budget`` items chosen by ``strategy``; return its ``round_id``.

    The cold start: a train round of any strategy but random, with no ``model_id`` on a
    project that has no trained model yet but an encoder's stored vectors
    (``cold_start_encoder``), is picked by TypiClust on those vectors; the round records
    strategy ``typiclust`` and ``params.cold_start`` (the encoder, the strategy asked for),
    and ``say`` (when given) is told so.

    ``model_id`` None means the project's latest model (ignored by random). ``seed``
    None draws one (recorded in the round's params). Fewer than ``budget`` items are
    chosen when the pool is smaller. ``strategy`` ``active`` (evaluation rounds only)
    draws with probabilities from the model's uncertainty about ``mart``'s estimand
    (None: whether the predicted class is right). Raises AlsqlError for an unknown
    project, strategy or mart, a budget outside 1..1,000,000, a purpose other than
    train / evaluation, an evaluation round neither random nor active, or ``mart``
    without ``active``; nothing is written then.
    """
    if purpose not in ROUND_PURPOSES:
        raise AlsqlError(f"--purpose {purpose!r}: expected one of {', '.join(ROUND_PURPOSES)}")
    if not isinstance(budget, (int, np.integer)) or not 1 <= int(budget) <= MAX_BUDGET:
        raise AlsqlError(f"--budget {budget!r}: expected an integer from 1 to {MAX_BUDGET:,}")
    if strategy == ACTIVE and purpose != "evaluation":
        raise AlsqlError("--strategy active: only for --purpose evaluation (a draw with known probabilities)")
    if strategy != ACTIVE:
        get_strategy(strategy)
    if purpose == "evaluation" and strategy not in ("random", ACTIVE):
        raise AlsqlError(
            f"--strategy {strategy!r} with --purpose evaluation: evaluation rounds are random, or active "
            f"(drawn with stored probabilities, so estimates stay unbiased); use --strategy random or active"
        )
    if mart is not None and strategy != ACTIVE:
        raise AlsqlError(f"--for {mart!r}: only with --strategy active (a random round serves every mart)")
    with engine.connect() as conn:
        if conn.execute(select(projects.c.project_id).where(projects.c.project_id == project_id)).first() is None:
            raise AlsqlError(f"project {project_id}: no such project")
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    draw = None
    extra: dict = {}
    prob = weight = None
    if strategy == ACTIVE:
        with engine.connect() as conn:
            model_id = require_model(conn, project_id, model_id)
            draw = active_draw(conn, project_id, model_id, int(budget), seed, mart)
        ids, score = draw.item_ids, draw.score
        extra = {"population": draw.population, "for": mart}
    else:
        population = None
        cold = None
        if purpose == "train" and strategy != "random" and model_id is None:
            with engine.connect() as conn:
                if latest_model_id(conn, project_id) is None:
                    cold = cold_start_encoder(conn, project_id)
        if purpose == "evaluation":
            with engine.connect() as conn:
                population = pool_size(conn, project_id)
            extra = {"population": population}
        if cold is not None:
            ids, score = cold_start_items(engine, project_id, int(budget), seed, cold, candidates)
            extra = {"cold_start": {"encoder_model_id": int(cold), "asked": strategy}}
            strategy = COLD_START
            if say is not None:
                say(f"cold start: TypiClust on encoder {cold}'s vectors (no trained model yet)")
        else:
            ids, score, model_id = select_items(engine, project_id, strategy, int(budget), model_id, seed,
                                                candidates)
        if population:
            prob, weight = uniform_draw_columns(len(ids), population)
    with write_transaction(engine) as conn:
        # Re-check under the write lock: a round created meanwhile may have taken some.
        still = set()
        for s in range(0, len(ids), 500):
            part = [int(i) for i in ids[s : s + 500]]
            still.update(conn.execute(
                select(items.c.item_id).where(items.c.item_id.in_(part), selectable(project_id, items.c.item_id))
            ).scalars())
        keep = [i for i, item in enumerate(ids) if int(item) in still]
        round_id = conn.execute(
            insert(rounds).values(
                project_id=project_id, model_id=model_id, strategy=strategy, purpose=purpose,
                budget=int(budget), status="open",
                params={"seed": seed, "candidates": candidates, "selected": len(keep)} | extra,
            ).returning(rounds.c.round_id)
        ).scalar_one()
        rows = [
            {"round_id": round_id, "rank": r, "item_id": int(ids[i]),
             "score": float(score[i]) if np.isfinite(score[i]) else None, "status": "pending",
             "inclusion_prob": float(draw.inclusion_prob[i]) if draw else prob,
             "weight": float(draw.weight[i]) if draw else weight}
            for r, i in enumerate(keep)
        ]
        for s in range(0, len(rows), 5000):
            conn.execute(insert(round_items), rows[s : s + 5000])
    return int(round_id)
