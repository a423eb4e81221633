"""Simulated active learning: an oracle answers rounds from known labels.

``run_loop`` repeats, ``rounds`` times: select ``budget`` items with the strategy
(before the first model, the cold start: TypiClust on the vectors of the project's
encoder when it has stored ones, ``alsql.models.select.cold_start_encoder``, the pool
embedded first when an ``alsql pretrain`` encoder has none; else random), label them from the
oracle (annotations with source ``oracle``; round items marked labeled, or skipped
when the oracle does not know them; the round closed), train, and infer (scores and
embeddings only). The 2-D map of the embeddings (``map_method``: tsne, pca or None) is
fitted once, for the last round's model, unless ``map_every_round`` asks for one per
round: a t-SNE of the whole pool took half of each round's time. Before the
first round it can hold out a random evaluation round (``eval_budget``), labeled by
the oracle too, whose labels never enter training.

Oracle CSV: ``label`` and one of ``item_id``, ``uri``, ``path`` (``path`` relative to
``root``, default the CSV's folder; a segment with its ``#t=START,END``), resolved as
``alsql labels import`` resolves them. The file is read and checked whole before any
work (``read_oracle``), and this module imports the training stack only when it runs.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select, update

from alsql.annotate import insert_annotations
from alsql.catalog import Project, get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.schema import model_versions, round_items, rounds
from alsql.schema.tables import utcnow
from alsql.schema.views import evaluation_set

if TYPE_CHECKING:
    from alsql.models.fit import TrainConfig

__all__ = ["RoundResult", "Oracle", "read_oracle", "load_oracle", "answer_round", "hold_out_evaluation", "run_loop",
           "first_strategy"]


@dataclass
class RoundResult:
    round: int
    round_id: int
    strategy: str
    labels: int
    model_id: int
    accuracy: float | None
    per_class_recall: dict
    balanced_accuracy: float | None = None
    seconds: float = 0.0  # wall time of the round: select, label, train, infer (and its map)


@dataclass
class Oracle:
    """An oracle file read: ``labels`` ``{item_id: class_id}``, its row count, and the
    references of rows that name no item with status ok (ignored)."""

    labels: dict[int, int]
    rows: int
    unknown: list[str]


def read_oracle(engine: Engine, project: Project, csv_path: str | Path, root: str | Path | None = None) -> Oracle:
    """Read and check an oracle CSV whole, before any work: every row's label must be a class of
    the project and its reference well formed (all bad rows listed, as ``alsql labels import``
    lists them), and at least one row must name an item with status ok; rows naming no item
    are ignored (``Oracle.unknown``). ``path`` values are relative to ``root`` (default: the
    CSV's folder); a segment is named with its ``#t=START,END``."""
    from alsql.loaders.labels import MAX_ERRORS_SHOWN, fragment_error, resolve_references

    path = Path(csv_path)
    if not path.is_file():
        raise AlsqlError(f"--oracle {str(csv_path)!r}: expected an existing CSV file")
    if root is not None and not Path(root).is_dir():
        raise AlsqlError(f"--root {str(root)!r}: expected the folder that was ingested")
    base = Path(root) if root else path.parent
    class_ids = {n: i for i, n in enumerate(project.classes)}
    rows: list[tuple[int, str, int]] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        key = next((k for k in ("item_id", "uri", "path") if k in (reader.fieldnames or [])), None)
        if key is None or "label" not in (reader.fieldnames or []):
            raise AlsqlError(f"--oracle {path.name}: expected columns 'label' and one of item_id, uri, path; "
                             f"found {reader.fieldnames or []}")
        for n, rec in enumerate(reader, start=2):
            label = (rec["label"] or "").strip()
            raw = (rec[key] or "").strip()
            if rec.get(None):
                errors.append(f"row {n}: more cells than columns; quote a {key} that holds a comma")
            elif label not in class_ids:
                errors.append(f"row {n}: label {label!r} is not a class of project {project.name!r} "
                              f"(classes: {', '.join(project.classes)})")
            elif key == "item_id" and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63):
                errors.append(f"row {n}: item_id {raw!r} is not an integer id")
            elif key != "item_id" and (not raw or fragment_error(raw)):
                errors.append(f"row {n}: {key} {fragment_error(raw) if raw else 'is empty'}")
            else:
                rows.append((n, raw, class_ids[label]))
    if errors:
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise AlsqlError(f"--oracle {path.name}: {len(errors)} bad row(s):\n  "
                         + "\n  ".join(errors[:MAX_ERRORS_SHOWN]) + more)
    refs = [int(r) if key == "item_id" else r for _, r, _ in rows]
    found = resolve_references(engine, key, base, refs)
    labels: dict[int, int] = {}
    unknown: list[str] = []
    for ref, (_, raw, cid) in zip(refs, rows):
        hit = found.get(ref)
        if hit is None or hit[1] != "ok":
            unknown.append(raw)
        else:
            labels[hit[0]] = cid
    if not labels:
        first = f"row 2: {key} {rows[0][1]!r}" if rows else "it has no rows"
        hint = (f" ({first} read under {base.resolve()}; pass --root, the folder that was ingested)"
                if key == "path" and rows else f" ({first})")
        raise AlsqlError(f"--oracle {path.name}: none of its {len(rows)} rows names an item in the database{hint}")
    return Oracle(labels, len(rows), unknown)


def load_oracle(engine: Engine, project: Project, csv_path: str | Path, root: str | Path | None = None) -> dict[int, int]:
    """``{item_id: class_id}`` from an oracle CSV (``read_oracle``); rows naming unknown items are ignored."""
    return read_oracle(engine, project, csv_path, root).labels


def answer_round(engine: Engine, project: Project, round_id: int, oracle: dict[int, int]) -> int:
    """Label the round's pending items from ``oracle``; close the round. Returns labels written."""
    with write_transaction(engine) as conn:
        pending = conn.execute(
            select(round_items.c.rank, round_items.c.item_id)
            .where(round_items.c.round_id == round_id, round_items.c.status == "pending")
        ).all()
        known = [(r, i) for r, i in pending if i in oracle]
        insert_annotations(conn, [
            {"project_id": project.project_id, "item_id": i, "class_id": oracle[i],
             "annotator": "oracle", "source": "oracle"} for _, i in known
        ])
        now = utcnow()
        for status, rows in (("labeled", known), ("skipped", [p for p in pending if p[1] not in oracle])):
            ranks = [r for r, _ in rows]
            for s in range(0, len(ranks), 500):
                conn.execute(
                    update(round_items)
                    .where(round_items.c.round_id == round_id, round_items.c.rank.in_(ranks[s : s + 500]))
                    .values(status=status, labeled_at=now if status == "labeled" else None)
                )
        conn.execute(update(rounds).where(rounds.c.round_id == round_id).values(status="closed", closed_at=now))
    return len(known)


def hold_out_evaluation(engine: Engine, project: Project, budget: int, oracle: dict[int, int], seed: int = 0) -> int:
    """A random evaluation round of ``budget`` items, answered by the oracle; returns its size."""
    from alsql.models.select import create_round

    rid = create_round(engine, project.project_id, "random", budget, purpose="evaluation", seed=seed)
    return answer_round(engine, project, rid, oracle)


def _evaluated(engine: Engine, project_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(evaluation_set).where(evaluation_set.c.project_id == project_id)
        ).scalar_one()


def first_strategy(engine: Engine, project_id: int, strategy: str,
                   say: Callable[[str], None] | None = None) -> str:
    """The strategy a round can ask for now: ``strategy`` once the project has a trained model
    (or for random), or when it has an encoder's stored vectors (``create_round`` then starts
    cold with TypiClust on them); else random.

    A project with an ``alsql pretrain`` encoder but no stored vectors has its pool embedded
    first (``alsql.models.embed.embed_project``, where that module ships), so the cold start
    needs no manual step; an encoder that did not learn (``alsql.models.encoders.encoder_learned``)
    is not read: random.
    """
    from alsql.models.encoders import SUFFIX, encoder_learned, latest_encoder
    from alsql.models.pool import latest_model_id
    from alsql.models.select import cold_start_encoder

    if strategy == "random":
        return strategy
    with engine.connect() as conn:
        if latest_model_id(conn, project_id) is not None or cold_start_encoder(conn, project_id) is not None:
            return strategy
        pretrained = latest_encoder(conn, project_id)
    if pretrained is None or not pretrained.architecture.endswith(SUFFIX):
        return "random"
    ok, why = encoder_learned(pretrained)
    if ok is False:  # its embeddings would be a random network's: the first picks stay random
        if say is not None:
            say(f"cold start: random picks, {why}")
        return "random"
    try:
        from alsql.models.embed import embed_project
    except ImportError:
        return "random"
    if say is not None:
        say(f"cold start: embedding the pool with encoder {pretrained.model_id} first")
    embed_project(engine, project_id, "pretrained", map_method=None, say=say or (lambda _m: None))
    with engine.connect() as conn:
        return strategy if cold_start_encoder(conn, project_id) is not None else "random"


def run_loop(engine: Engine, project: str | int, rounds_: int, budget: int, strategy: str,
             oracle_csv: str | Path | Oracle, *, cfg: TrainConfig | None = None, eval_budget: int = 0,
             seed: int = 0, bald: int = 0, grayscale: bool = False, root: str | Path | None = None,
             on_round: Callable[[RoundResult], None] | None = None, map_method: str | None = "tsne",
             map_every_round: bool = False, say: Callable[[str], None] | None = None) -> list[RoundResult]:
    """Run ``rounds_`` simulated rounds; return one result per round (after its training),
    each passed to ``on_round`` as soon as it ends.

    ``oracle_csv``: the oracle file (read and checked by ``read_oracle`` against ``root``
    before any work), or an ``Oracle`` already read. ``map_method`` (tsne, pca or None: no
    map) is fitted for the last model only, or after every round with ``map_every_round``.
    ``say`` is told how a cold start picked (``create_round``)."""
    if rounds_ < 1:
        raise AlsqlError(f"--rounds {rounds_}: expected at least 1")
    if map_method is not None and map_method not in ("tsne", "pca"):
        raise AlsqlError(f"--map {map_method!r}: expected tsne, pca or none")
    with engine.connect() as conn:
        proj = get_project(conn, project)
    read = oracle_csv if isinstance(oracle_csv, Oracle) else read_oracle(engine, proj, oracle_csv, root)
    oracle = read.labels
    from alsql.models import maps
    from alsql.models.fit import TrainConfig
    from alsql.models.infer import infer_project
    from alsql.models.select import create_round
    from alsql.models.heads import train_round_model

    if eval_budget and not _evaluated(engine, proj.project_id):
        hold_out_evaluation(engine, proj, eval_budget, oracle, seed)
    cfg = cfg or TrainConfig()
    if strategy == "bald" and not bald:
        bald = 10
    results = []
    for r in range(rounds_):
        t0 = time.perf_counter()
        use = first_strategy(engine, proj.project_id, strategy, say)
        rid = create_round(engine, proj.project_id, use, budget, seed=seed + r, say=say)
        with engine.connect() as conn:  # a cold start records the strategy that picked (typiclust)
            use = conn.execute(select(rounds.c.strategy).where(rounds.c.round_id == rid)).scalar_one()
        answer_round(engine, proj, rid, oracle)
        # A head on the encoder's stored vectors when the head-or-fine-tune choice picks one, else the network.
        model_id = train_round_model(engine, proj.project_id, cfg, grayscale=grayscale,
                                     head_kind="mlp" if bald else "linear")
        infer_project(engine, proj.project_id, model_id, bald=bald, device=cfg.device, amp=cfg.amp, map_method=None)
        if map_method is not None and (map_every_round or r == rounds_ - 1):
            maps.compute_map(engine, model_id, map_method, seed=seed)
        with engine.connect() as conn:
            row = conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()
        m = row.metrics or {}
        res = RoundResult(r + 1, rid, use, row.label_count, model_id, m.get("accuracy"),
                          m.get("per_class_recall", {}), m.get("balanced_accuracy"), time.perf_counter() - t0)
        results.append(res)
        if on_round:
            on_round(res)
    return results
