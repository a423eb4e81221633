"""Project scope benchmark: what the scope condition costs the views' keyset pages.

One database of ``--items`` ok items (60% images, 20% video segments, 20% sound clips,
20% labeled in every project: a tenth of the images and half the video), populated with bulk SQL, on SQLite and PostgreSQL (when
``ALSQL_TEST_POSTGRES_URL`` reaches a server). Each figure is rows/s of a full keyset
read (pages of 4,096 rows, ``WHERE project_id = :p AND item_id > :last ORDER BY item_id
LIMIT :n``), the median of ``--repeat`` passes, and its time against the baseline's in the same run:

- ``unlabeled_pool`` and ``training_set`` as revision 0008 created them (no scope: the
  baseline), and as now for a project without a scope (the default), with a kind scope
  (video) and with a prefix scope (the video folder).

    python benchmarks/scope.py [--items 1000000] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

REPORT = Path(__file__).parent / "reports" / "scope.json"
PAGE = 4096


def populate(url: str, n: int) -> dict[str, int]:
    """Migrate, insert ``n`` items and 10% labels per project; return the projects' ids by name."""
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.schema.views import create_view_sql
    from alsql.scope import set_scope

    upgrade(url)
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    series = (f"generate_series(1, {n}) AS s(i)" if pg else
              f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s")
    kind = "CASE WHEN i % 10 < 6 THEN 'image' WHEN i % 10 < 8 THEN 'video' ELSE 'audio' END"
    cat = "||"
    with write_transaction(engine) as conn:
        ids = {name: create_project(conn, name, ["a", "b"]).project_id for name in ("default", "video", "prefix")}
        set_scope(conn, ids["video"], kinds=["video"])
        set_scope(conn, ids["prefix"], prefixes=["file:///bench/video/"])
        conn.execute(text(
            f"INSERT INTO items (item_id, uri, media_type, status, ingested_at) SELECT i, "
            f"'file:///bench/' {cat} {kind} {cat} '/' {cat} CAST(i AS VARCHAR(20)), {kind} {cat} '/x', 'ok', "
            f"CURRENT_TIMESTAMP FROM {series}"))
        for pid in ids.values():
            conn.execute(text(
                "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, created_at, source) "
                f"SELECT {pid}, item_id, item_id * 3 + {pid}, item_id % 2, CURRENT_TIMESTAMP, 'import' "
                "FROM items WHERE item_id % 10 IN (3, 7)"))
        for view in ("unlabeled_pool", "training_set"):  # the baseline: the views as 0008 made them
            sql = create_view_sql(view, engine.dialect, at="0008")
            conn.execute(text(sql.replace(f"CREATE VIEW {view} AS", f"CREATE VIEW {view}_0008 AS", 1)))
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return ids


def read_all(engine, view: str, pid: int) -> int:
    q = text(f"SELECT item_id, uri FROM {view} WHERE project_id = :p AND item_id > :last "
             f"ORDER BY item_id LIMIT :n")
    rows, last = 0, 0
    with engine.connect() as conn:
        while True:
            page = conn.execute(q, {"p": pid, "last": last, "n": PAGE}).all()
            rows += len(page)
            if len(page) < PAGE:
                return rows
            last = page[-1][0]


def measure(url: str, n: int, repeat: int) -> list[dict]:
    from alsql.db import make_engine

    ids = populate(url, n)
    engine = make_engine(url)
    out = []
    cases = [("baseline (0008 view)", "{v}_0008", "default"), ("default (no scope)", "{v}", "default"),
             ("kind video", "{v}", "video"), ("prefix .../video/", "{v}", "prefix")]
    try:
        for view in ("unlabeled_pool", "training_set"):
            for label, name, proj in cases:
                times, rows = [], 0
                for _ in range(repeat):
                    t = time.perf_counter()
                    rows = read_all(engine, name.format(v=view), ids[proj])
                    times.append(time.perf_counter() - t)
                med = statistics.median(times)
                out.append({"backend": engine.dialect.name, "view": view, "case": label, "rows": rows,
                            "seconds_median": round(med, 3), "rows_per_s": round(rows / med) if med else None})
    finally:
        engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100,000 items")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.items
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += measure(f"sqlite:///{Path(tmp) / 'scope.db'}", n, args.repeat)
    pg_url = os.environ.get("ALSQL_TEST_POSTGRES_URL")
    if pg_url:
        from alsql.db import normalize_url

        name = f"alsql_bench_scope_{os.getpid()}"
        admin = create_engine(normalize_url(pg_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            results += measure(normalize_url(pg_url).set(database=name).render_as_string(hide_password=False),
                               n, args.repeat)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    table = Table("backend", "view", "case", "rows", "s (median)", "rows/s", "time vs baseline",
                  title=f"keyset reads of the views, {n:,} items (a scoped project reads fewer rows)")
    base = {(r["backend"], r["view"]): r["seconds_median"] for r in results if r["case"].startswith("baseline")}
    for r in results:
        ratio = r["seconds_median"] / base[(r["backend"], r["view"])] if base.get((r["backend"], r["view"])) else None
        r["time_vs_baseline"] = round(ratio, 3) if ratio else None
        table.add_row(r["backend"], r["view"], r["case"], f"{r['rows']:,}", f"{r['seconds_median']:.2f}",
                      f"{r['rows_per_s']:,}", "" if ratio is None else f"{ratio:.2f}x")
    Console(width=150).print(table)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"items": n, "repeat": args.repeat, "page_rows": PAGE, "results": results},
                                 indent=2) + "\n")
    print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
