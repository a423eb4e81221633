"""Semantic search benchmark: the scan behind ``alsql search`` at many items, time and peak memory.

One database of ``--items`` ok items with ``--dim``-d float16 vectors under one CLIP-like encoder
row (random vectors, bulk SQL; 10% of the items labeled), on SQLite and PostgreSQL (when
``ALSQL_TEST_POSTGRES_URL`` reaches a server). Each arm runs in a child process (its peak RSS is
its own) and finds the 50 nearest of the unlabeled pool to a random query vector (the text tower's
forward pass is one text and does not grow with the pool; it is left out):

- ``search``: ``alsql.models.search`` as the CLI and the web run it: keyset pages of the encoder's
  vectors with the pool condition correlated per row, a running top-k (``top_k``);
- ``vector_pages``: the same top-k over ``alsql.models.vectors.vector_pages`` of the pool as a
  SELECT (the condition as ``item_id IN (subquery)`` per page);
- ``load all`` (the baseline): every pool vector read at once, then one ``argsort``.

Figures: the median of ``--repeat`` runs (seconds, items/s) and the largest peak RSS; the JSON report
goes to ``benchmarks/reports/search.json``.

    python benchmarks/search.py [--items 200000] [--dim 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
REPORT = Path(__file__).parent / "reports" / "search.json"
K = 50
ARMS = ("search", "vector_pages", "load all")


def populate(url: str, n: int, dim: int) -> tuple[int, int]:
    """Migrate, insert ``n`` items, their vectors under one encoder row and 10% labels; ``(project, encoder)``."""
    from sqlalchemy import insert, text

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.schema import embeddings, model_versions

    upgrade(url)
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    series = (f"generate_series(1, {n}) AS s(i)" if pg else
              f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s")
    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", ["a", "b"]).project_id
        eid = conn.execute(insert(model_versions).values(
            project_id=pid, name="hf:bench-clip", architecture="hf:bench-clip", status="encoder", metrics={},
            params={"kind": "encoder", "encoder": {"spec": "hf:bench-clip", "family": "clip", "dim": dim,
                                                   "dtype": "float16", "fingerprint": "0" * 64}},
        ).returning(model_versions.c.model_id)).scalar_one()
        conn.execute(text(
            "INSERT INTO items (item_id, uri, media_type, status, ingested_at) SELECT i, "
            "'file:///bench/' || CAST(i AS VARCHAR(20)) || '.png', 'image/png', 'ok', CURRENT_TIMESTAMP "
            f"FROM {series}"))
        conn.execute(text(
            "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, created_at, source) "
            f"SELECT {pid}, item_id, item_id, item_id % 2, CURRENT_TIMESTAMP, 'import' FROM items "
            "WHERE item_id % 10 = 3"))
    rng = np.random.default_rng(0)
    step = 20_000
    for s in range(1, n + 1, step):
        m = min(step, n + 1 - s)
        vec = rng.normal(size=(m, dim)).astype("<f2")
        with write_transaction(engine) as conn:
            conn.execute(insert(embeddings), [{"model_id": eid, "item_id": s + j, "vector": vec[j].tobytes(),
                                               "x": 0.0, "y": 0.0} for j in range(m)])
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return int(pid), int(eid)


def child(url: str, arm: str, pid: int, eid: int, dim: int) -> dict:
    """One arm in this process: seconds, vectors compared, peak RSS (MB) and the hits."""
    from sqlalchemy import select

    from alsql.db import make_engine
    from alsql.models import search as mod
    from alsql.models.pool import selectable
    from alsql.models.vectors import unpack, vector_pages
    from alsql.schema import embeddings, items

    engine = make_engine(url)
    q = np.random.default_rng(1).normal(size=dim).astype(np.float32)
    t0 = time.perf_counter()
    if arm == "search":
        ids, sims, seen = mod.top_k(mod._pages(engine, eid, mod._pool_clause(pid, False), dim), q, K)
    elif arm == "vector_pages":
        pool = select(items.c.item_id).where(selectable(pid, items.c.item_id))
        page = mod.PAGE_BYTES // (4 * dim)
        ids, sims, seen = mod.top_k(vector_pages(engine, eid, pool, page), q, K)
    else:
        e = embeddings.c
        with engine.connect() as conn:
            rows = conn.execute(select(e.item_id, e.vector).where(e.model_id == eid, selectable(pid, e.item_id))
                                .order_by(e.item_id)).all()
        all_ids = np.array([r[0] for r in rows], np.int64)
        vec = unpack([r[1] for r in rows], "<f2")
        del rows
        s = vec @ (q / np.linalg.norm(q)) / np.linalg.norm(vec, axis=1)
        order = np.lexsort((all_ids, -s))[:K]
        ids, sims, seen = all_ids[order], s[order], len(all_ids)
    secs = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": secs, "compared": int(seen), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "ids": [int(i) for i in ids]}


def run_arm(url: str, arm: str, pid: int, eid: int, dim: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", url, arm, str(pid), str(eid), str(dim)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        url, arm, pid, eid, dim = a.child
        print(json.dumps(child(url, arm, int(pid), int(eid), int(dim))))
        return
    console = Console()
    backends = {"sqlite": None}
    if os.environ.get("ALSQL_TEST_POSTGRES_URL"):
        backends["postgresql"] = os.environ["ALSQL_TEST_POSTGRES_URL"]
    report = {"items": a.items, "dim": a.dim, "k": K, "repeat": a.repeat, "labeled_share": 0.1,
              "load_average": os.getloadavg()[0], "results": {}}
    table = Table(title=f"search: {K} nearest of the pool, {a.items:,} items x {a.dim}-d float16 "
                        f"(median of {a.repeat})")
    for col in ("backend", "arm", "seconds", "items/s", "peak RSS MB", "vs load all", "same hits"):
        table.add_column(col, justify="right" if col not in ("backend", "arm") else "left")
    with tempfile.TemporaryDirectory() as tmp:
        for name, admin in backends.items():
            if admin is None:
                url = f"sqlite:///{Path(tmp) / 'search.db'}"
            else:
                from sqlalchemy import create_engine, text

                db = f"alsql_bench_search_{os.getpid()}"
                eng = create_engine(admin, isolation_level="AUTOCOMMIT")
                with eng.connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {db}"))
                    conn.execute(text(f"CREATE DATABASE {db}"))
                url = admin.rsplit("/", 1)[0] + f"/{db}"
            t0 = time.perf_counter()
            pid, eid = populate(url, a.items, a.dim)
            console.print(f"{name}: populated in {time.perf_counter() - t0:.0f} s")
            res = {}
            for arm in ARMS:
                runs = [run_arm(url, arm, pid, eid, a.dim) for _ in range(a.repeat)]
                res[arm] = {"seconds": statistics.median(r["seconds"] for r in runs),
                            "runs": [r["seconds"] for r in runs], "compared": runs[0]["compared"],
                            "rss_mb": max(r["rss_mb"] for r in runs), "ids": runs[0]["ids"]}
            base = res["load all"]
            for arm in ARMS:
                r = res[arm]
                table.add_row(name, arm, f"{r['seconds']:.2f}", f"{r['compared'] / r['seconds']:,.0f}",
                              f"{r['rss_mb']:.0f}", f"{r['seconds'] / base['seconds']:.2f}x",
                              str(r["ids"] == base["ids"]))
            report["results"][name] = {
                arm: {k: v for k, v in r.items() if k != "ids"} | {"same_hits": r["ids"] == base["ids"]}
                for arm, r in res.items()}
            if admin is not None:
                eng.dispose()
                with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {db}"))
    console.print(table)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    console.print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
