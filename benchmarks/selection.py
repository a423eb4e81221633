"""Selection benchmark: every strategy over 1M and 5M stored predictions with embeddings.

For each backend (SQLite, PostgreSQL) and pool size N, one database holds N ok items,
one model's N predictions (10 classes, float16 probs) and N embeddings (``--dim``
float16), and ``--labels`` labeled items. Each strategy picks ``--budget`` items through
``alsql.models.select.select_items`` in a process of its own (time of the call, and
the process's peak RSS, imports included):

- ours: this tree, on the schema at head (predictions and embeddings with their
  clustered key only);
- baseline, same run, same rows: ``--baseline-tree`` (a checkout of the code before the
  change, e.g. ``git worktree add <dir> <commit>``) on the same database downgraded to
  revision 0004 (the three score indexes and the foreign keys back). A baseline run
  longer than ``--baseline-timeout`` is stopped and reported as "> timeout".

Statistics are fresh for both (ANALYZE after loading), so the baseline's figures are
not inflated by stale plans. Goals (issue 17) at 5M: margin / entropy /
least_confidence under 5 s, random under 2 s, coreset / badge / cluster_margin /
typiclust (budget 1000) under 60 s and 1 GB peak RSS; ``status`` (the ``alsql status``
summary, listed with the strategies) under 300 MB peak RSS.

    python benchmarks/selection.py [--sizes 1000000 5000000] [--backends sqlite postgresql]
                                   [--baseline-tree DIR] [--baseline-timeout 120]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPORT = Path(__file__).parent / "reports" / "selection.json"
PG_ADMIN = os.environ.get("ALSQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STRATEGIES = ("margin", "entropy", "least_confidence", "random", "coreset", "badge", "cluster_margin", "typiclust",
              "balanced_margin", "class_balanced", "status")  # status: ``alsql status`` (its summary), time and peak RSS
CHUNK = 250_000

# Run with the tree under test as the working directory, so ``import alsql`` is that tree.
# Peak RSS from /proc (VmHWM, this process image only): getrusage's ru_maxrss would keep the
# parent's peak across fork and exec.
PEAK = r"""
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
"""
WORKER = PEAK + r"""
import json, sys, time
from alsql.db import make_engine
from alsql.models.select import select_items
url, strategy = sys.argv[1], sys.argv[2]
budget, pid, mid, seed = (int(a) for a in sys.argv[3:7])
engine = make_engine(url)
t = time.perf_counter()
ids, score, _ = select_items(engine, pid, strategy, budget, None if strategy == "random" else mid, seed)
dt = time.perf_counter() - t
print(json.dumps({"seconds": round(dt, 3), "picked": int(len(ids)),
                  "peak_rss_mb": peak_mb()}))
"""

STATUS_WORKER = PEAK + r"""
import json, sys, time
from alsql.db import make_engine
from alsql.report import status_summary
t = time.perf_counter()
status_summary(make_engine(sys.argv[1]))
print(json.dumps({"seconds": round(time.perf_counter() - t, 3),
                  "peak_rss_mb": peak_mb()}))
"""


def _columns(lo: int, n: int, dim: int, rng: np.random.Generator) -> dict:
    p = rng.dirichlet(np.full(10, 0.3), size=n)
    top = np.sort(p, axis=1)
    return dict(item_id=np.arange(lo, lo + n, dtype=np.int64), class_id=p.argmax(1).astype(np.int32),
                confidence=top[:, -1], margin=top[:, -1] - top[:, -2], entropy=-(p * np.log(p + 1e-12)).sum(1),
                probs=p.astype("<f2"), vector=(rng.normal(size=(n, dim)) + 3.0).astype("<f2"))


def fill(url: str, n: int, dim: int, labels: int) -> tuple[int, int]:
    """N items, one model's N predictions and embeddings, ``labels`` labeled items; (project, model)."""
    from sqlalchemy import insert

    from alsql.annotate import insert_annotations
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.writer import pg_copy_buffer
    from alsql.schema import model_versions

    engine = make_engine(url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", [f"c{i}" for i in range(10)]).project_id
        pg = conn.dialect.name == "postgresql"
        series = (f"generate_series(1, {n}) AS i" if pg else
                  f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS t")
        conn.exec_driver_sql(f"INSERT INTO items (item_id, uri, status, ingested_at) SELECT i, 'file:///b/' || i || '.png', "
                             f"'ok', '2024-01-01 00:00:00' FROM {series}")
        mid = conn.execute(insert(model_versions).values(project_id=pid, architecture="cnn")
                           .returning(model_versions.c.model_id)).scalar_one()
    rng = np.random.default_rng(0)
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        cur = db.cursor()
        if not pg:
            cur.execute("BEGIN IMMEDIATE")
        for lo in range(1, n + 1, CHUNK):
            c = _columns(lo, min(CHUNK, n + 1 - lo), dim, rng)
            m = np.full(len(c["item_id"]), mid, np.int64)
            if pg:
                pred = [("model_id", m), *((k, c[k]) for k in ("item_id", "class_id", "confidence", "margin", "entropy")),
                        ("bald", None), ("probs", c["probs"])]
                for table, cols in (("predictions", pred), ("embeddings", [("model_id", m), ("item_id", c["item_id"]),
                                                                             ("vector", c["vector"]), ("x", None), ("y", None)])):
                    with cur.copy(f"COPY {table} ({', '.join(k for k, _ in cols)}) FROM STDIN (FORMAT BINARY)") as cp:
                        cp.write(pg_copy_buffer(cols))
            else:
                probs = c["probs"].view(f"V{c['probs'].shape[1] * 2}").reshape(-1).tolist()
                vec = c["vector"].view(f"V{dim * 2}").reshape(-1).tolist()
                ids = c["item_id"].tolist()
                cur.executemany("INSERT INTO predictions (model_id, item_id, class_id, confidence, margin, entropy, probs) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                zip(m.tolist(), ids, c["class_id"].tolist(), c["confidence"].tolist(),
                                    c["margin"].tolist(), c["entropy"].tolist(), probs))
                cur.executemany("INSERT INTO embeddings VALUES (?, ?, ?, NULL, NULL)", zip(m.tolist(), ids, vec))
        db.commit() if pg else cur.execute("COMMIT")
    finally:
        raw.close()
    picked = np.random.default_rng(1).choice(np.arange(1, n + 1), size=labels, replace=False)
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": pid, "item_id": int(i), "class_id": int(i) % 10} for i in picked])
    analyze(engine)
    engine.dispose()
    return pid, mid


def analyze(engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def run(tree: Path, url: str, strategy: str, budget: int, pid: int, mid: int, timeout: float) -> dict:
    """``strategy`` picks ``budget`` items in a process of its own; "status" times ``alsql status`` instead."""
    cmd = ["-c", STATUS_WORKER, url] if strategy == "status" else [
        "-c", WORKER, url, strategy, str(budget), str(pid), str(mid), "0"]
    try:
        out = subprocess.run([sys.executable, *cmd], cwd=tree, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "stopped_after_s": timeout}
    if out.returncode:
        return {"seconds": None, "error": out.stderr.strip().splitlines()[-1][:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def one(backend: str, url: str, n: int, args) -> dict:
    from alsql.migrations import downgrade, upgrade

    res: dict = {"items": n, "labels": args.labels, "dim": args.dim}
    upgrade(url)
    t = time.perf_counter()
    pid, mid = fill(url, n, args.dim, args.labels)
    res["load_s"] = round(time.perf_counter() - t, 1)
    print(f"{backend} {n:,}: loaded in {res['load_s']} s", flush=True)
    res["ours"] = {s: run(ROOT, url, s, args.budget, pid, mid, args.timeout) for s in args.strategies}
    print(f"{backend} {n:,} ours: {res['ours']}", flush=True)
    if args.baseline_tree:
        from alsql.db import make_engine

        t = time.perf_counter()
        downgrade(url, args.baseline_revision)
        engine = make_engine(url)
        analyze(engine)
        engine.dispose()
        res["downgrade_s"] = round(time.perf_counter() - t, 1)
        res["baseline"] = {s: run(Path(args.baseline_tree), url, s, args.budget, pid, mid, args.baseline_timeout)
                           for s in args.strategies}
        print(f"{backend} {n:,} baseline: {res['baseline']}", flush=True)
    return res


def _fmt(r: dict | None) -> str:
    if not r:
        return "-"
    if r.get("seconds") is None:
        return f"> {r['stopped_after_s']:.0f} s (stopped)" if "stopped_after_s" in r else "error"
    return f"{r['seconds']:.2f} s, {r['peak_rss_mb']} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--labels", type=int, default=2200)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--baseline-tree", type=Path)
    ap.add_argument("--baseline-timeout", type=float, default=120)
    ap.add_argument("--baseline-revision", default="0004",
                    help="the schema revision the baseline tree reads (the database is downgraded to it)")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import create_engine, text

    from alsql.db import normalize_url

    report = {"budget": args.budget, "load_average_1m_at_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
              "baseline_tree": bool(args.baseline_tree), "runs": []}
    for n in args.sizes:
        for backend in args.backends:
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    report["runs"].append({"backend": backend, **one(backend, f"sqlite:///{Path(tmp) / 's.db'}", n, args)})
                args.report.parent.mkdir(parents=True, exist_ok=True)
                args.report.write_text(json.dumps(report, indent=2) + "\n")
                continue
            name = f"alsql_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = normalize_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
                report["runs"].append({"backend": backend, **one(backend, url, n, args)})
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(json.dumps(report, indent=2) + "\n")
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    t = Table(title=f"select_items, budget {args.budget}: time and peak RSS of the selecting process")
    for c in ("backend", "items", "strategy", "ours", "before (same rows)"):
        t.add_column(c, justify="right")
    for r in report["runs"]:
        for s in args.strategies:
            t.add_row(r["backend"], f"{r['items']:,}", s, _fmt(r["ours"].get(s)), _fmt(r.get("baseline", {}).get(s)))
    Console().print(t)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
