"""Labeling app latency on SQLite at scale: label-and-next and the embedding map.

Populates a fresh SQLite database with bulk SQL (recursive CTEs, no Python rows):
``--items`` items (default 1,000,000), a project with ``--classes`` classes (100),
a model with a prediction and a 2-D embedding per item, ``--labeled`` existing labels
(100,000), and one open train round over every unlabeled item. Then, through
the full HTTP stack (token auth):

- label-and-next: ``POST /api/projects/{id}/labels`` with ``next=1`` (append the label
  through insert_annotations, mark the round item, lease the next item, return it with
  the model's guess); ``--requests`` times, as an annotator works through the queue.
  The server is uvicorn in a child process; the client is httpx with keep-alive, so
  the figures are what a browser sees on this machine (network stack included).
- map: ``GET /api/projects/{id}/map?limit=50000``, ``--repeats`` times.
- baselines in the same run: ``GET /api/me`` (auth and framework overhead only) and
  reading the same 50,000 embedding rows with one bare SQL query.

    python benchmarks/web.py [--items 1000000] [--requests 1000] [--repeats 5]

Targets (issue 6): label-and-next p95 under 30 ms; map of 50,000 points under 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT = Path(__file__).parent / "reports" / "web.json"


def populate(url: str, n_items: int, n_classes: int, n_labeled: int) -> dict:
    from sqlalchemy import text

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.web.auth import add_user

    upgrade(url)
    engine = make_engine(url)
    seq = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
    with write_transaction(engine) as conn:
        project = create_project(conn, "bench", [f"class{c:03d}" for c in range(n_classes)])
        pid = project.project_id
        add_user(conn, "annie", "annotator", token="bench-token-annie-0123456789")
        conn.execute(text(seq + "INSERT INTO items (item_id, uri, sha256, media_type, width, height, status, "
                          "ingested_at) SELECT i, 'file:///bench/' || i || '.png', printf('%064x', i), "
                          "'image/png', 32, 32, 'ok', '2024-01-01 00:00:00.000000' FROM s"), {"n": n_items})
        model_id = conn.execute(text(
            "INSERT INTO model_versions (project_id, architecture, label_count, metrics, status, created_at) "
            "VALUES (:p, 'smallcnn', :l, '{\"accuracy\": 0.8}', 'ready', '2024-01-02 00:00:00.000000') "
            "RETURNING model_id"), {"p": pid, "l": n_labeled}).scalar_one()
        # Pseudo-random but deterministic values from the item id.
        conn.execute(text(seq + "INSERT INTO predictions (model_id, item_id, class_id, confidence, margin, entropy) "
                          "SELECT :m, i, (i * 7919) % :c, 0.2 + ((i * 104729) % 800) / 1000.0, "
                          "((i * 1299709) % 1000) / 1000.0, ((i * 15485863) % 1000) / 250.0 FROM s"),
                     {"n": n_items, "m": model_id, "c": n_classes})
        conn.execute(text(seq + "INSERT INTO embeddings (model_id, item_id, x, y) SELECT :m, i, "
                          "((i * 7919) % :c) + ((i * 104729) % 1000) / 1100.0, "
                          "((i * 7919) % :c) / 10 + ((i * 1299709) % 1000) / 1100.0 FROM s"),
                     {"n": n_items, "m": model_id, "c": n_classes})
        conn.execute(text(seq + "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, annotator, "
                          "created_at, seconds, source) SELECT :p, i, i, (i * 7919) % :c, 'import', "
                          "'2024-01-03 00:00:00.000000', NULL, 'import' FROM s"),
                     {"n": n_labeled, "p": pid, "c": n_classes})
        round_id = conn.execute(text(
            "INSERT INTO rounds (project_id, model_id, strategy, purpose, budget, status, created_at) "
            "VALUES (:p, :m, 'margin', 'train', :b, 'open', '2024-01-04 00:00:00.000000') RETURNING round_id"),
            {"p": pid, "m": model_id, "b": n_items - n_labeled}).scalar_one()
        conn.execute(text(seq + "INSERT INTO round_items (round_id, rank, item_id, score, status) "
                          "SELECT :r, i - 1, i + :off, 1.0 - i * 1e-7, 'pending' FROM s"),
                     {"n": n_items - n_labeled, "r": round_id, "off": n_labeled})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return {"project_id": pid, "model_id": model_id, "round_id": round_id}


SERVER = """
import sys, uvicorn
from alsql.web import create_app
uvicorn.run(create_app(sys.argv[1], "bench-secret"), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False)
"""


@contextlib.contextmanager
def server(url: str):
    """uvicorn serving the app for ``url`` in a child process; yields its base URL."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/login", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--labeled", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-report", action="store_true", help="print only (quick runs while iterating)")
    args = ap.parse_args()

    import httpx
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from alsql.db import make_engine
    from alsql.schema import embeddings

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'web-bench.db'}"
        t = time.perf_counter()
        ids = populate(url, args.items, args.classes, args.labeled)
        populate_s = time.perf_counter() - t
        console.print(f"populated {args.items:,} items in {populate_s:.1f} s")
        pid = ids["project_id"]
        headers = {"Authorization": "Bearer bench-token-annie-0123456789"}
        with server(url) as base, httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            for _ in range(20):  # warm-up: connections, caches
                c.get("/api/me")
            me = []
            for _ in range(args.requests):
                t = time.perf_counter(); c.get("/api/me").raise_for_status(); me.append(time.perf_counter() - t)
            todo = c.post(f"/api/projects/{pid}/queue", json={"n": 1}).json()["items"]
            lab, k = [], 0
            while len(lab) < args.requests and todo:
                item = todo[0]["item_id"]
                t = time.perf_counter()
                r = c.post(f"/api/projects/{pid}/labels",
                           json={"item_id": item, "class_id": k % args.classes, "seconds": 1.0, "next": 1})
                lab.append(time.perf_counter() - t)
                r.raise_for_status()
                todo, k = r.json()["items"], k + 1
            maps, npoints = [], 0
            for _ in range(args.repeats):
                t = time.perf_counter()
                r = c.get(f"/api/projects/{pid}/map?limit=50000")
                maps.append(time.perf_counter() - t)
                r.raise_for_status()
                npoints = len(r.json()["item_id"])
        raw = []
        engine = make_engine(url)
        with engine.connect() as conn:
            for _ in range(args.repeats):
                t = time.perf_counter()
                conn.execute(select(embeddings.c.item_id, embeddings.c.x, embeddings.c.y)
                             .where(embeddings.c.model_id == ids["model_id"])
                             .order_by(embeddings.c.item_id).limit(50_000)).all()
                raw.append(time.perf_counter() - t)
        engine.dispose()

    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    rows = {
        "label_and_next": {"n": len(lab), "median_ms": ms(statistics.median(lab)), "p95_ms": ms(pct(lab, 0.95)),
                           "max_ms": ms(max(lab)), "target_p95_ms": 30},
        "baseline_auth_only_get_me": {"n": len(me), "median_ms": ms(statistics.median(me)),
                                      "p95_ms": ms(pct(me, 0.95))},
        "map_50k": {"n": len(maps), "points": npoints, "median_ms": ms(statistics.median(maps)),
                    "max_ms": ms(max(maps)), "target_ms": 1000},
        "baseline_map_raw_sql_50k": {"n": len(raw), "median_ms": ms(statistics.median(raw)),
                                     "max_ms": ms(max(raw))},
    }
    table = Table(title=f"labeling app on SQLite: {args.items:,} items, {args.classes} classes, "
                        f"{args.labeled:,} prior labels")
    for col in ("measure", "n", "median ms", "p95 / max ms", "target"):
        table.add_column(col)
    table.add_row("label-and-next (POST labels, next=1)", str(len(lab)), str(rows["label_and_next"]["median_ms"]),
                  f"p95 {rows['label_and_next']['p95_ms']}", "p95 < 30 ms")
    table.add_row("baseline: GET /api/me", str(len(me)), str(rows["baseline_auth_only_get_me"]["median_ms"]),
                  f"p95 {rows['baseline_auth_only_get_me']['p95_ms']}", "")
    table.add_row(f"map ({npoints:,} points)", str(len(maps)), str(rows["map_50k"]["median_ms"]),
                  f"max {rows['map_50k']['max_ms']}", "< 1000 ms")
    table.add_row("baseline: raw SQL, 50k embeddings", str(len(raw)),
                  str(rows["baseline_map_raw_sql_50k"]["median_ms"]),
                  f"max {rows['baseline_map_raw_sql_50k']['max_ms']}", "")
    console.print(table)
    ok = rows["label_and_next"]["p95_ms"] < 30 and rows["map_50k"]["max_ms"] < 1000 and npoints == min(50_000, args.items)
    console.print("targets met" if ok else "[red]targets NOT met[/red]")
    if not args.no_report:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps({
            "benchmark": "web", "backend": "sqlite", "items": args.items, "classes": args.classes,
            "prior_labels": args.labeled, "populate_seconds": round(populate_s, 1), "results": rows,
            "targets_met": ok,
        }, indent=2) + "\n")
        console.print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
