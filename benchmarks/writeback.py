"""Write-back benchmark: predictions/s through PredictionWriter vs the raw engine path.

For SQLite and PostgreSQL, N predictions (10 classes, float16 probs) of one model are
written into an empty ``predictions`` table, from the same numpy arrays:

- ours: ``PredictionWriter(engine, model_id, buffer_rows=50_000)`` (sorted bulk upsert);
  PredictionWriter checks the model and every item id set-wise per flush (the tables
  carry no foreign keys) and refreshes the planner statistics at close; both are timed.
- baseline, same run: the raw engine path into a table with the primary key alone
  (``predictions`` itself: since migration 0005 it carries its clustered key only):
  SQLite ``executemany`` of a plain INSERT over prebuilt tuples in one transaction;
  PostgreSQL binary ``COPY ... FROM STDIN`` of a prebuilt binary buffer (no upsert,
  no checks, nothing converted while timed).
- ``ours, overwrite``: the same rows written again over the stored ones (the upsert path).

Targets (issue 17): >= 300,000 rows/s and >= 0.5x the baseline on each backend.

    python benchmarks/writeback.py [--rows 500000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPORT = Path(__file__).parent / "reports" / "writeback.json"
PG_ADMIN = os.environ.get("ALSQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
COLS = ("model_id", "item_id", "class_id", "confidence", "margin", "entropy", "bald", "probs")


def rows(n: int, classes: int = 10) -> dict:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(classes), size=n).astype(np.float32)
    top = np.sort(p, axis=1)
    return dict(item_ids=np.arange(1, n + 1), class_id=p.argmax(1), confidence=top[:, -1],
                margin=top[:, -1] - top[:, -2], entropy=-(p * np.log(p)).sum(1), probs=p)


def prepare(url: str, n: int) -> tuple:
    from sqlalchemy import insert

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.schema import model_versions

    upgrade(url)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", [f"c{i}" for i in range(10)]).project_id
        series = (f"generate_series(1, {n}) AS i" if conn.dialect.name == "postgresql" else
                  f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS t")
        conn.exec_driver_sql(
            f"INSERT INTO items (item_id, uri, status, ingested_at) SELECT i, 'file:///b/' || i, 'ok', "
            f"'2024-01-01 00:00:00' FROM {series}"
        )
        mid = conn.execute(insert(model_versions).values(project_id=pid, architecture="cnn")
                           .returning(model_versions.c.model_id)).scalar_one()
    return engine, mid


def ours(engine, mid, data, batch=10_000) -> None:
    from alsql.loaders.writer import PredictionWriter

    with PredictionWriter(engine, mid, buffer_rows=50_000) as w:
        for s in range(0, len(data["item_ids"]), batch):
            w.write(**{k: v[s:s + batch] for k, v in data.items()})


def tuples(mid, data) -> list:
    p16 = data["probs"].astype("<f2")
    raw, width = p16.tobytes(), p16.shape[1] * 2
    n = len(data["item_ids"])
    return list(zip([mid] * n, data["item_ids"].tolist(), data["class_id"].tolist(), data["confidence"].tolist(),
                    data["margin"].tolist(), data["entropy"].tolist(), [None] * n,
                    [raw[i * width:(i + 1) * width] for i in range(n)]))


def raw_sqlite(engine, prebuilt, table="predictions") -> None:
    conn = engine.raw_connection()
    try:
        cur = conn.driver_connection.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.executemany(f"INSERT INTO {table} ({', '.join(COLS)}) VALUES ({', '.join('?' * len(COLS))})", prebuilt)
        cur.execute("COMMIT")
    finally:
        conn.close()


def pg_buffer(mid, data) -> bytes:
    from alsql.loaders.writer import pg_copy_buffer

    n = len(data["item_ids"])
    return pg_copy_buffer([("model_id", np.full(n, mid, np.int64)), ("item_id", data["item_ids"].astype(np.int64)),
                           ("class_id", data["class_id"].astype(np.int32)), ("confidence", data["confidence"].astype("f8")),
                           ("margin", data["margin"].astype("f8")), ("entropy", data["entropy"].astype("f8")),
                           ("bald", None), ("probs", data["probs"].astype("<f2"))])


def raw_pg(engine, prebuilt, table="predictions") -> None:
    conn = engine.raw_connection()
    try:
        pg = conn.driver_connection
        with pg.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(COLS)}) FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(prebuilt)
        pg.commit()
    finally:
        conn.close()


def bench(engine, mid, data, raw_fn, repeats) -> dict:
    from sqlalchemy import delete, func, select

    from alsql.schema import predictions

    n = len(data["item_ids"])
    prebuilt = pg_buffer(mid, data) if raw_fn is raw_pg else tuples(mid, data)
    # (name, empty the table first, run); "ours, overwrite" writes over what "ours" stored.
    runs = (("raw", True, lambda: raw_fn(engine, prebuilt)), ("ours", True, lambda: ours(engine, mid, data)),
            ("ours_overwrite", False, lambda: ours(engine, mid, data)))
    table = predictions
    out = {name: [] for name, _, _ in runs}
    cpu = {name: [] for name, _, _ in runs}
    for _ in range(repeats):  # interleaved; the table is emptied before each run
        for name, empty, fn in runs:
            with engine.begin() as conn:  # PostgreSQL: TRUNCATE, so no run pays for the dead rows of the last
                if not empty:
                    pass
                elif conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"TRUNCATE {table.name}")
                else:
                    conn.execute(delete(table))
            t, c = time.perf_counter(), time.process_time()
            fn()
            out[name].append(n / (time.perf_counter() - t))
            cpu[name].append(n / (time.process_time() - c))
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(table)).scalar() == n
    # rows per second of this process's CPU time: for SQLite (in-process) the rate on an idle core
    # when the machine is shared; for PostgreSQL it leaves out the server's work.
    res = {k: {"rows_per_s": round(statistics.median(v)), "runs": [round(x) for x in v],
               "rows_per_cpu_s": round(statistics.median(cpu[k]))} for k, v in out.items()}
    res["ratio"] = round(res["ours"]["rows_per_s"] / res["raw"]["rows_per_s"], 3)
    res["ok"] = res["ours"]["rows_per_s"] >= 300_000 and res["ratio"] >= 0.5
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100,000 rows, one repeat")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    if args.quick:
        args.rows, args.repeats = 100_000, 1
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import create_engine, text

    from alsql.db import normalize_url

    data = rows(args.rows)
    report = {"rows": args.rows, "classes": 10, "repeats": args.repeats, "quick": args.quick,
              "load_average_1m_at_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        engine, mid = prepare(f"sqlite:///{Path(tmp) / 'wb.db'}", args.rows)
        report["sqlite"] = bench(engine, mid, data, raw_sqlite, args.repeats)
        engine.dispose()
    name = f"alsql_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = normalize_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        engine, mid = prepare(url, args.rows)
        report["postgresql"] = bench(engine, mid, data, raw_pg, args.repeats)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    t = Table(title=f"Predictions written per second ({args.rows:,} rows, medians of {args.repeats})")
    for c in ("backend", "PredictionWriter", "raw engine path, PK only", "ratio", "target met", "PredictionWriter, overwrite"):
        t.add_column(c, justify="right")
    for b, raw_name in (("sqlite", "executemany"), ("postgresql", "binary COPY")):
        r = report[b]
        t.add_row(b, f"{r['ours']['rows_per_s']:,}", f"{r['raw']['rows_per_s']:,} ({raw_name})", f"{r['ratio']:.2f}",
                  str(r["ok"]), f"{r['ours_overwrite']['rows_per_s']:,}")
    Console().print(t)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
