"""Every strategy and every purpose skips items whose status is not ok (corrupt, missing)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert, select

from alsql.annotate import insert_annotations
from alsql.db import make_engine, write_transaction
from alsql.loaders.datasets import pack_f16
from alsql.models.select import create_round, select_items
from alsql.models.strategies import strategy_names
from alsql.schema import embeddings, model_versions, predictions, round_items
from tests.conftest import add_items

# random and margin on both backends; every other strategy on SQLite (same SQL, slower on PostgreSQL).
_BOTH = {"random", "margin"}
CASES = [
    pytest.param(name, "train", backend, id=f"{name}-train-{backend}")
    for name in strategy_names()
    for backend in (("sqlite", "postgres") if name in _BOTH else ("sqlite",))
] + [
    pytest.param("random", "evaluation", backend, id=f"random-evaluation-{backend}")
    for backend in ("sqlite", "postgres")
]


def _pool(engine, project_id):
    """12 ok, 4 corrupt and 4 missing items, all scored and embedded; two ok items labeled."""
    ok = add_items(engine, 12)
    corrupt = add_items(engine, 4, start=100, status="corrupt")
    missing = add_items(engine, 4, start=200, status="missing")
    every = ok + corrupt + missing
    rng = np.random.default_rng(0)
    with write_transaction(engine) as conn:
        mid = conn.execute(
            insert(model_versions).values(project_id=project_id, architecture="cnn", params={}, status="ready")
            .returning(model_versions.c.model_id)
        ).scalar_one()
        rows, vecs = [], []
        for j, item in enumerate(every):
            p = rng.dirichlet(np.ones(5))
            s = np.sort(p)[::-1]
            # The non-ok items get the "most informative" scores: a broken filter picks them first.
            bad = item not in ok
            rows.append({
                "model_id": mid, "item_id": item, "class_id": int(p.argmax()),
                "confidence": 0.01 if bad else float(s[0]), "margin": 0.0 if bad else float(s[0] - s[1]),
                "entropy": 9.0 if bad else float(-(p * np.log(p)).sum()), "bald": 9.0 if bad else 0.1,
                "probs": pack_f16(p),
            })
            vecs.append({"model_id": mid, "item_id": item, "vector": pack_f16(rng.normal(size=8) * (5 if bad else 1))})
        conn.execute(insert(predictions), rows)
        conn.execute(insert(embeddings), vecs)
        insert_annotations(conn, [{"project_id": project_id, "item_id": i, "class_id": 0} for i in ok[:2]])
    return set(ok[2:]), set(corrupt + missing)


@pytest.mark.parametrize(("strategy", "purpose", "backend"), CASES)
def test_every_strategy_and_purpose_skips_non_ok_items(strategy, purpose, backend, request):
    from alsql.catalog import create_project

    if backend == "postgres":
        request.applymarker(pytest.mark.postgres)
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    engine = make_engine(url)
    try:
        with write_transaction(engine) as conn:
            pid = create_project(conn, "status", ["a", "b", "c", "d", "e"]).project_id
        selectable, bad = _pool(engine, pid)
        # The ranking itself (select_items) and the round written (create_round, which re-checks).
        ids, _score, _mid = select_items(engine, pid, strategy, 50, seed=1)
        assert not set(ids.tolist()) & bad
        assert set(ids.tolist()) == selectable
        rid = create_round(engine, pid, strategy, 50, purpose=purpose, seed=1)
        with engine.connect() as conn:
            picked = set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars())
        assert picked == selectable  # every ok unlabeled item, and nothing corrupt or missing
    finally:
        engine.dispose()
