"""Labeling app latency at scale on SQLite and PostgreSQL: label-and-next, one client and
twenty at once, and the embedding map.

Populates a fresh database per backend with bulk SQL (no Python rows): ``--items``
items (default 1,000,000), a project with ``--classes`` classes (100), a model with a
prediction and a 2-D embedding per item, ``--labeled`` existing labels (100,000), and
one open train round over every unlabeled item. Then, through the full HTTP stack
(token auth), against ONE uvicorn server process:

- label-and-next, one client: ``POST /api/projects/{id}/labels`` with ``next=1``
  (append the label through insert_annotations, mark the round item, lease the next
  item, return it with the model's guess); ``--requests`` times, as an annotator
  works through the queue. The client is httpx with keep-alive.
- label-and-next, ``--clients`` (20) annotators at once, each its own user and
  token, each labeling ``--per-client`` items: every annotator waits a think time
  drawn uniformly from 0 to ``2 * --think-ms`` before each label (people look at the
  item; 250 ms on average is a very fast annotator), and a second run with no think
  time at all (saturation: each answer is followed by the next request at once). The
  clients are asyncio tasks on httpx's async client in this process. Lost labels are
  checked: annotations written == labels posted and answered 200, each item once.
- quality side by side: label-and-next with ``--clients`` annotators (think time as
  above) on two projects over the same items, identical but for their settings:
  overlap and gold off (``bench``) and on (``bench-quality``: ``--overlap`` 0.3 of the
  queue also served to a second annotator (``--overlap-annotators`` 2), ``--gold-rate``
  0.1 of what is served drawn from ``--gold`` gold items). Both projects hold the same
  prior labels, the same gold labels and a prediction per item. After one unmeasured
  warm-up run of each arm (``--quality-warmup`` labels per annotator) the arms alternate
  (off, on, off, on, ... ``--quality-reps`` (5) runs of ``--quality-per-client`` (50)
  labels per annotator each, so both arms see the same background load) against the
  same server; compared: the median over the runs of each run's p95 (pooled figures
  beside it), with ``uptime`` recorded before and after. Checked on both arms: nothing
  lost, no annotator served the same item twice; the share of labels that went to gold
  items and to a second annotator is reported.
- review queue: ``GET /api/projects/{id}/review?limit=20`` from the start of the
  quality project, following ``next_after`` for ``--review-pages`` requests (each
  scans a bounded range of item ids).
- map: ``GET /api/projects/{id}/map?limit=50000``, ``--repeats`` times.
- baselines in the same run: ``GET /api/me`` (auth and framework overhead only) and
  reading the same 50,000 embedding rows with one bare SQL query.
- SQL statements per label-and-next, after the timed runs, in this process (the app
  through FastAPI's test client, SQLAlchemy's ``before_cursor_execute`` event):
  ``--statement-labels`` labels on each project; the mean, mode and range per request,
  and the distinct statement texts (count and digest: a change of the SQL issued shows).

    python benchmarks/web.py [--backends sqlite,postgresql] [--items 1000000] [--requests 1000]

PostgreSQL: a scratch database is created on ``--pg-url``'s server and dropped after.
Targets: label-and-next p95 under 30 ms (one client); under 100 ms with 20
annotators (one server process on 2 cores); map of 50,000 points under 1 s; with
overlap and gold on, the 20-annotator p95 (median over the alternating runs) no higher
than with them off (same run).
"""

from __future__ import annotations

import os
import sys

# Scripts here import nothing from this folder; drop it from the path so a sibling script
# named like a standard module (select.py) cannot shadow that module.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPORT = Path(__file__).parent / "reports" / "web.json"


PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN = "bench-token-{}-0123456789"


def _series(dialect: str) -> tuple[str, str, str]:
    """(prefix, FROM clause over i = 1..:n, 64-hex-digit text of i) per dialect."""
    if dialect == "sqlite":
        return ("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) ", "FROM s",
                "printf('%064x', i)")
    return "", "FROM generate_series(1::bigint, :n) AS s(i)", "lpad(to_hex(i), 64, '0')"


def populate(url: str, n_items: int, n_classes: int, n_labeled: int, n_users: int, n_gold: int = 0,
             quality: dict | None = None, embeddings: bool = True) -> dict:
    """Items, users and the project ``bench``; with ``quality`` (project settings: overlap,
    overlap_annotators, gold_rate) a second project ``bench-quality`` over the same items,
    identical but for those settings (and no embeddings: the map is measured on ``bench``).
    ``n_gold`` of the prior labels are gold labels in both."""
    from alsql.migrations import upgrade

    upgrade(url)
    out = _populate_project(url, "bench", n_items, n_classes, n_labeled, n_users, n_gold, None, True, embeddings)
    if quality is not None:
        out["quality"] = _populate_project(url, "bench-quality", n_items, n_classes, n_labeled, 0, n_gold,
                                           quality, False, False)
    _analyze(url)
    return out


def _populate_project(url: str, name: str, n_items: int, n_classes: int, n_labeled: int, n_users: int,
                      n_gold: int, quality: dict | None, first: bool, with_embeddings: bool) -> dict:
    from sqlalchemy import text

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.web.auth import add_user

    engine = make_engine(url)
    dialect = engine.dialect.name
    pre, src, hexed = _series(dialect)
    # Every (n_labeled // n_gold)-th prior label is a gold label (they are spread over the ids).
    gold_every = max(n_labeled // n_gold, 1) if n_gold else 0
    with write_transaction(engine) as conn:
        project = create_project(conn, name, [f"class{c:03d}" for c in range(n_classes)])
        pid = project.project_id
        if quality:
            from alsql.quality import write_settings

            write_settings(conn, pid, **quality)
        for u in range(n_users):
            add_user(conn, f"annotator{u:02d}", "annotator", token=TOKEN.format(u))
        if first:  # who walks the review queue
            add_user(conn, "reviewer", "admin", token=TOKEN.format("review"))
        if first:
            conn.execute(text(pre + "INSERT INTO items (item_id, uri, sha256, media_type, width, height, status, "
                              f"ingested_at) SELECT i, 'file:///bench/' || i || '.png', {hexed}, "
                              f"'image/png', 32, 32, 'ok', '2024-01-01 00:00:00.000000' {src}"), {"n": n_items})
        model_id = conn.execute(text(
            "INSERT INTO model_versions (project_id, architecture, label_count, metrics, status, created_at) "
            "VALUES (:p, 'smallcnn', :l, '{\"accuracy\": 0.8}', 'ready', '2024-01-02 00:00:00.000000') "
            "RETURNING model_id"), {"p": pid, "l": n_labeled}).scalar_one()
        # Pseudo-random but deterministic values from the item id.
        conn.execute(text(pre + "INSERT INTO predictions (model_id, item_id, class_id, confidence, margin, entropy) "
                          "SELECT :m, i, (i * 7919) % :c, 0.2 + ((i * 104729) % 800) / 1000.0, "
                          f"((i * 1299709) % 1000) / 1000.0, ((i * 15485863) % 1000) / 250.0 {src}"),
                     {"n": n_items, "m": model_id, "c": n_classes})
        if with_embeddings:
            conn.execute(text(pre + "INSERT INTO embeddings (model_id, item_id, x, y) SELECT :m, i, "
                              "((i * 7919) % :c) + ((i * 104729) % 1000) / 1100.0, "
                              f"((i * 7919) % :c) / 10 + ((i * 1299709) % 1000) / 1100.0 {src}"),
                         {"n": n_items, "m": model_id, "c": n_classes})
        # Annotation ids continue after the rows already there (the first project's).
        base = conn.execute(text("SELECT coalesce(max(annotation_id), 0) FROM annotations")).scalar_one()
        source = "CASE WHEN :g > 0 AND i % :g = 0 THEN 'gold' ELSE 'import' END" if gold_every else "'import'"
        conn.execute(text(pre + "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, annotator, "
                          f"created_at, seconds, source) SELECT :p, i, :base + i, (i * 7919) % :c, 'import', "
                          f"'2024-01-03 00:00:00.000000', NULL, {source} {src}"),
                     {"n": n_labeled, "p": pid, "c": n_classes, "base": base, "g": gold_every})
        round_id = conn.execute(text(
            "INSERT INTO rounds (project_id, model_id, strategy, purpose, budget, status, created_at) "
            "VALUES (:p, :m, 'margin', 'train', :b, 'open', '2024-01-04 00:00:00.000000') RETURNING round_id"),
            {"p": pid, "m": model_id, "b": n_items - n_labeled}).scalar_one()
        conn.execute(text(pre + "INSERT INTO round_items (round_id, rank, item_id, score, status) "
                          f"SELECT :r, i - 1, i + :off, 1.0 - i * 1e-7, 'pending' {src}"),
                     {"n": n_items - n_labeled, "r": round_id, "off": n_labeled})
        if dialect == "postgresql":  # explicit ids above: move the identities past them
            for table, col in (("items", "item_id"), ("annotations", "annotation_id")):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', '{col}'), "
                                  f"(SELECT max({col}) FROM {table}))"))
    engine.dispose()
    return {"project_id": pid, "model_id": model_id, "round_id": round_id,
            "gold": n_labeled // gold_every if gold_every else 0}


def _analyze(url: str) -> None:
    from alsql.db import make_engine

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":  # as after a bulk load: visibility map set, no autovacuum in the runs
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:  # committed: a rolled-back ANALYZE leaves no statistics
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


@contextlib.contextmanager
def scratch_database(backend: str, pg_url: str):
    """A fresh, empty database URL for ``backend``; removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'web-bench.db'}"
        return
    from sqlalchemy import create_engine, text

    from alsql.db import normalize_url

    name = f"alsql_bench_web_{os.getpid()}"
    admin = create_engine(normalize_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalize_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


async def _annotators(base: str, pid: int, clients: int, per_client: int, think_s: float, seed: int,
                      n_classes: int) -> dict:
    """``clients`` annotators label ``per_client`` items each; latencies and what was labeled."""
    import asyncio

    import httpx

    lat: list[float] = []
    labeled: list[tuple[int, int]] = []  # (annotator, item)
    failures: list[str] = []

    async def one(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        headers = {"Authorization": f"Bearer {TOKEN.format(k)}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as c:
            r = await c.post(f"/api/projects/{pid}/queue", json={"n": 1})
            todo = r.json()["items"]
            for n in range(per_client):
                if not todo:
                    break
                if think_s:
                    await asyncio.sleep(rng.uniform(0, 2 * think_s))
                item = todo[0]["item_id"]
                t = time.perf_counter()
                r = await c.post(f"/api/projects/{pid}/labels",
                                 json={"item_id": item, "class_id": (k + n) % n_classes, "seconds": 1.0, "next": 1})
                lat.append(time.perf_counter() - t)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    break
                labeled.append((k, item))
                todo = r.json()["items"]

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(clients)))
    return {"latencies": lat, "labeled": labeled, "failures": failures, "wall_s": time.perf_counter() - t0}


def concurrent_run(url: str, base: str, pid: int, clients: int, per_client: int, think_ms: float, seed: int,
                   n_classes: int) -> dict:
    """One concurrent run, with the lost-label check against the database: the project's
    ``ui`` rows written during the run == labels answered 200; ``repeats``: labels of an
    item by an annotator who had labeled it already in the run (must be 0). ``gold_share``
    and ``overlap_share``: the run's labels that went to gold items, and those of an item
    another annotator had labeled before (in this run or an earlier one)."""
    import asyncio

    from sqlalchemy import func, select

    from alsql.db import make_engine
    from alsql.schema import annotations

    engine = make_engine(url)
    a = annotations

    def last_id() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(a.c.annotation_id), 0))).scalar_one()

    first = last_id()
    out = asyncio.run(_annotators(base, pid, clients, per_client, think_ms / 1000, seed, n_classes))
    gold, other = a.alias("gold"), a.alias("other")
    new_ui = (a.c.project_id == pid) & (a.c.source == "ui") & (a.c.annotation_id > first)
    with engine.connect() as conn:
        written = conn.execute(select(func.count()).where(new_ui)).scalar_one()
        on_gold = conn.execute(select(func.count()).where(new_ui, select(gold.c.item_id).where(
            gold.c.project_id == pid, gold.c.item_id == a.c.item_id, gold.c.source == "gold").exists())).scalar_one()
        second = conn.execute(select(func.count()).where(new_ui, select(other.c.item_id).where(
            other.c.project_id == pid, other.c.item_id == a.c.item_id, other.c.source == "ui",
            other.c.annotator != a.c.annotator, other.c.annotation_id < a.c.annotation_id).exists())).scalar_one()
    engine.dispose()
    lat, pairs = out["latencies"], out["labeled"]
    posted, items_ = len(pairs), [i for _, i in pairs]
    distinct = len(set(items_))
    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    return {
        "clients": clients, "think_ms_mean": think_ms, "labels_posted": posted,
        "labels_written": written, "distinct_items": distinct, "lost": posted - written,
        "repeats": posted - len(set(pairs)), "failures": out["failures"][:5],
        "gold_share": round(on_gold / posted, 3) if posted else None,
        "overlap_share": round(second / posted, 3) if posted else None,
        "median_ms": ms(statistics.median(lat)) if lat else None, "p95_ms": ms(pct(lat, 0.95)) if lat else None,
        "max_ms": ms(max(lat)) if lat else None,
        "labels_per_s": round(posted / out["wall_s"], 1) if out["wall_s"] else None,
        "latencies": lat,
    }


def _share(runs: list[dict], key: str) -> float | None:
    n = sum(r["labels_posted"] for r in runs)
    return round(sum(r[key] * r["labels_posted"] for r in runs if r[key] is not None) / n, 3) if n else None


def _pooled(runs: list[dict]) -> dict:
    """The arm's runs: the median of the runs' p95 and of their medians, the pooled median
    and p95 of every latency, and each run's own figures."""
    lat = [v for r in runs for v in r["latencies"]]
    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    keep = ("labels_posted", "labels_written", "lost", "repeats", "gold_share", "overlap_share", "median_ms",
            "p95_ms", "max_ms", "labels_per_s")
    p95s = [r["p95_ms"] for r in runs if r["p95_ms"] is not None]
    medians = [r["median_ms"] for r in runs if r["median_ms"] is not None]
    return {"median_p95_ms": round(statistics.median(p95s), 2) if p95s else None,
            "median_median_ms": round(statistics.median(medians), 2) if medians else None,
            "p95_ms_per_run": p95s,
            "n": len(lat), "median_ms": ms(statistics.median(lat)) if lat else None,
            "p95_ms": ms(pct(lat, 0.95)) if lat else None, "max_ms": ms(max(lat)) if lat else None,
            "lost": sum(r["lost"] for r in runs), "repeats": sum(r["repeats"] for r in runs),
            "gold_share": _share(runs, "gold_share"), "overlap_share": _share(runs, "overlap_share"),
            "failures": [f for r in runs for f in r["failures"]][:5],
            "runs": [{k: r[k] for k in keep} for r in runs]}


def _uptime() -> str:
    """``uptime``'s line (the load averages), for the report."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def quality_side_by_side(url: str, base: str, ids: dict, args) -> dict:
    """Overlap and gold off vs on, alternating runs against one server (same load).

    A short warm-up run of each arm first (not measured: connections, caches, the first
    copies opened), then off, on, off, on, ... ``--quality-reps`` runs each. Compared: the
    median over the reps of each run's p95 (``median_p95_ms``; one slow run moves it less
    than it moves a pooled p95), with the pooled figures beside it."""
    off_runs, on_runs = [], []
    arms = ((ids["project_id"], off_runs), (ids["quality"]["project_id"], on_runs))
    if args.quality_warmup:
        for pid, _ in arms:
            concurrent_run(url, base, pid, args.clients, args.quality_warmup, args.think_ms, 99, args.classes)
    uptime = [_uptime()]
    for rep in range(args.quality_reps):
        for pid, runs in arms:
            runs.append(concurrent_run(url, base, pid, args.clients, args.quality_per_client, args.think_ms,
                                       100 + rep, args.classes))
    uptime.append(_uptime())
    off, on = _pooled(off_runs), _pooled(on_runs)
    pairs = [(a["p95_ms"], b["p95_ms"]) for a, b in zip(off_runs, on_runs)]
    return {"clients": args.clients, "think_ms_mean": args.think_ms, "per_client": args.quality_per_client,
            "reps_each": args.quality_reps, "order": "warm-up off, on; then off, on, off, on, ...",
            "uptime_before_after": uptime,
            "settings_on": {"overlap": args.overlap, "overlap_annotators": args.overlap_annotators,
                            "gold_rate": args.gold_rate, "gold_items": ids["quality"]["gold"]},
            "off": off, "on": on,
            "reps_with_on_p95_not_above_off": sum(1 for x, y in pairs if y <= x),
            "p95_on_not_above_off": on["median_p95_ms"] is not None and off["median_p95_ms"] is not None
            and on["median_p95_ms"] <= off["median_p95_ms"]}


def review_walk(base: str, pid: int, pages: int) -> dict:
    """``GET /api/projects/{id}/review`` from the start, following ``next_after`` for up to
    ``pages`` requests: the latency of each bounded page and what it found."""
    import httpx

    lat, found, after = [], 0, 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN.format('review')}"},
                      timeout=120) as c:
        for _ in range(pages):
            t = time.perf_counter()
            r = c.get(f"/api/projects/{pid}/review", params={"after": after, "limit": 20})
            lat.append(time.perf_counter() - t)
            r.raise_for_status()
            body = r.json()
            found += len(body["items"])
            if body["next_after"] is None:
                break
            after = body["next_after"]
    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    return {"requests": len(lat), "items_found": found, "reached_end": after is None or len(lat) < pages,
            "median_ms": ms(statistics.median(lat)), "p95_ms": ms(pct(lat, 0.95)), "max_ms": ms(max(lat))}


def _drop(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "latencies"}


def statements_per_label(url: str, pid: int, n: int, n_classes: int) -> dict:
    """SQL statements per label-and-next (``POST /labels`` with ``next=1``), counted with
    SQLAlchemy's ``before_cursor_execute`` event on the app's engine, in this process (the
    timed runs go through a server process, uncounted). The reviewer labels ``n`` items of
    project ``pid`` after one uncounted label (caches warm). Reported: per-request counts
    (mean, mode, min, max) and the distinct statement texts (count and a SHA-256 of them,
    sorted), which differ only when the SQL the app issues differs."""
    import collections
    import hashlib

    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from alsql.web import create_app

    app = create_app(url, "bench-secret")
    engine = app.state.engine
    texts: list[str] = []

    def seen(_conn, _cursor, statement, *_):
        texts.append(statement)

    per: list[int] = []
    headers = {"Authorization": f"Bearer {TOKEN.format('review')}"}
    with TestClient(app, headers=headers) as c:
        todo = c.post(f"/api/projects/{pid}/queue", json={"n": 1}).json()["items"]
        for k in range(n + 1):
            if not todo:
                break
            start = len(texts)
            if k == 1:
                event.listen(engine, "before_cursor_execute", seen)
            r = c.post(f"/api/projects/{pid}/labels",
                       json={"item_id": todo[0]["item_id"], "class_id": k % n_classes, "seconds": 1.0, "next": 1})
            r.raise_for_status()
            if k:
                per.append(len(texts) - start)
            todo = r.json()["items"]
    event.remove(engine, "before_cursor_execute", seen)
    engine.dispose()
    distinct = sorted(set(texts))
    return {"n": len(per), "mean": round(statistics.mean(per), 3) if per else None,
            "mode": collections.Counter(per).most_common(1)[0][0] if per else None,
            "min": min(per, default=None), "max": max(per, default=None),
            "distinct_statements": len(distinct),
            "statements_sha256": hashlib.sha256("\n;\n".join(distinct).encode()).hexdigest()[:16]}


def _statements(url: str, ids: dict, args) -> dict:
    """``statements_per_label`` on the plain project and, when there, the quality one."""
    out = {"plain": statements_per_label(url, ids["project_id"], args.statement_labels, args.classes)}
    if "quality" in ids:
        out["quality"] = statements_per_label(url, ids["quality"]["project_id"], args.statement_labels,
                                              args.classes)
    return out


def run_backend(backend: str, args, console) -> dict:
    import httpx
    from sqlalchemy import select

    from alsql.db import make_engine
    from alsql.schema import embeddings

    load = [round(os.getloadavg()[0], 1)]
    with scratch_database(backend, args.pg_url) as url:
        t = time.perf_counter()
        quality = None if args.no_quality else {"overlap": args.overlap, "overlap_annotators": args.overlap_annotators,
                                                "gold_rate": args.gold_rate}
        ids = populate(url, args.items, args.classes, args.labeled, args.clients + 1, args.gold, quality,
                       embeddings=not args.quality_only)
        populate_s = time.perf_counter() - t
        console.print(f"{backend}: populated {args.items:,} items in {populate_s:.1f} s")
        pid = ids["project_id"]
        if args.quality_only:
            with server(url) as base:
                side = quality_side_by_side(url, base, ids, args)
                walk = review_walk(base, ids["quality"]["project_id"], args.review_pages)
            load.append(round(os.getloadavg()[0], 1))
            side.update(populate_seconds=round(populate_s, 1), load_average_1min_before_after=load)
            return {"quality_side_by_side": side, "review_queue_walk": walk,
                    "statements_per_label_and_next": _statements(url, ids, args)}
        headers = {"Authorization": f"Bearer {TOKEN.format(args.clients)}"}  # the single client's own user
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
            paced = concurrent_run(url, base, pid, args.clients, args.per_client, args.think_ms, 1, args.classes)
            saturated = concurrent_run(url, base, pid, args.clients, args.per_client, 0.0, 2, args.classes)
            side = None if args.no_quality else quality_side_by_side(url, base, ids, args)
            walk = review_walk(base, ids["quality"]["project_id"] if side else pid, args.review_pages)
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
        statements = _statements(url, ids, args)
    load.append(round(os.getloadavg()[0], 1))

    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    return {
        "populate_seconds": round(populate_s, 1),
        "load_average_1min_before_after": load,
        "label_and_next": {"n": len(lab), "median_ms": ms(statistics.median(lab)), "p95_ms": ms(pct(lab, 0.95)),
                           "max_ms": ms(max(lab)), "target_p95_ms": 30},
        "label_and_next_20_annotators": {**_drop(paced), "target_p95_ms": 100},
        "label_and_next_20_clients_no_think_time": _drop(saturated),
        "quality_side_by_side": side,
        "review_queue_walk": walk,
        "statements_per_label_and_next": statements,
        "baseline_auth_only_get_me": {"n": len(me), "median_ms": ms(statistics.median(me)),
                                      "p95_ms": ms(pct(me, 0.95))},
        "map_50k": {"n": len(maps), "points": npoints, "median_ms": ms(statistics.median(maps)),
                    "max_ms": ms(max(maps)), "target_ms": 1000},
        "baseline_map_raw_sql_50k": {"n": len(raw), "median_ms": ms(statistics.median(raw)),
                                     "max_ms": ms(max(raw))},
    }


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--pg-url", default=os.environ.get("ALSQL_TEST_POSTGRES_URL", PG_URL))
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--labeled", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=100, help="labels per concurrent annotator")
    ap.add_argument("--think-ms", type=float, default=250.0, help="mean think time of a concurrent annotator")
    ap.add_argument("--gold", type=int, default=1000, help="gold labels among the prior labels (both projects)")
    ap.add_argument("--overlap", type=float, default=0.3, help="the quality arm's overlap share")
    ap.add_argument("--overlap-annotators", type=int, default=2)
    ap.add_argument("--gold-rate", type=float, default=0.1, help="the quality arm's share of gold items served")
    ap.add_argument("--quality-reps", type=int, default=5, help="runs of each quality arm, alternating")
    ap.add_argument("--quality-warmup", type=int, default=5,
                    help="labels per annotator in one unmeasured run of each arm before the alternation (0: none)")
    ap.add_argument("--quality-per-client", type=int, default=50,
                    help="labels per annotator in each run of a quality arm")
    ap.add_argument("--review-pages", type=int, default=30, help="review queue pages walked (keyset)")
    ap.add_argument("--quality-only", action="store_true",
                    help="measure only the overlap-and-gold side by side and the review queue; merge them into "
                         "the report's results per backend (the other figures stay as they are)")
    ap.add_argument("--no-quality", action="store_true", help="skip the overlap-and-gold side-by-side arm")
    ap.add_argument("--statement-labels", type=int, default=100,
                    help="labels whose SQL statements are counted, per project (in this process, after the runs)")
    ap.add_argument("--no-report", action="store_true", help="print only (quick runs while iterating)")
    ap.add_argument("--report", type=Path, default=REPORT, help="where the JSON report goes")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("sqlite", "postgresql"):
            raise SystemExit(f"--backends {b!r}: expected sqlite or postgresql")
    results = {b: run_backend(b, args, console) for b in backends}

    table = Table(title=f"labeling app, one server process: {args.items:,} items, {args.classes} classes, "
                        f"{args.labeled:,} prior labels")
    for col in ("backend", "measure", "n", "median ms", "p95 / max ms", "target"):  # quality arms: medians of runs
        table.add_column(col)
    ok = True
    for b, rows in results.items():
        if "label_and_next" in rows:
            ok = _table_rows(table, b, rows) and ok
        side = rows["quality_side_by_side"]
        if side is not None:
            st = side["settings_on"]
            for arm, label in (("off", "overlap and gold off"),
                               ("on", f"overlap {st['overlap']} x{st['overlap_annotators']}, gold {st['gold_rate']}")):
                r = side[arm]
                shares = (f"{r['gold_share']:.1%} to gold items, {r['overlap_share']:.1%} to a 2nd annotator"
                          if r["n"] else "")
                table.add_row(b, f"label-and-next, {side['clients']} annotators, {label}", str(r["n"]),
                              str(r["median_median_ms"]),
                              f"p95 {r['median_p95_ms']} (runs {', '.join(f'{v:.0f}' for v in r['p95_ms_per_run'])})",
                              f"lost {r['lost']}, repeats {r['repeats']}; {shares}"
                              + ("; median p95 not above off" if arm == "on" and side["p95_on_not_above_off"] else
                                 "; median p95 ABOVE off" if arm == "on" else ""))
            ok = ok and side["p95_on_not_above_off"] and all(
                side[a]["lost"] == 0 and side[a]["repeats"] == 0 and not side[a]["failures"] for a in ("off", "on"))
        for arm, st in rows["statements_per_label_and_next"].items():
            table.add_row(b, f"SQL statements per label-and-next ({arm} project)", str(st["n"]),
                          f"mean {st['mean']}", f"mode {st['mode']}, {st['min']}..{st['max']}",
                          f"{st['distinct_statements']} distinct, sha {st['statements_sha256']}")
        w = rows["review_queue_walk"]
        table.add_row(b, "review queue page (limit 20, keyset walk)", str(w["requests"]), str(w["median_ms"]),
                      f"p95 {w['p95_ms']}", f"{w['items_found']} items to review found"
                      + (", end reached" if w["reached_end"] else ""))
    console.print(table)
    console.print("targets met" if ok else "[red]targets NOT met[/red]")
    if not args.no_report:
        path = args.report
        path.parent.mkdir(parents=True, exist_ok=True)
        if args.quality_only:  # merged into the full run's report
            report = json.loads(path.read_text()) if path.exists() else {"benchmark": "web", "results": {}}
            for b, rows in results.items():
                report["results"].setdefault(b, {}).update(rows)
            report["quality_run"] = {"commit": _commit(), "items": args.items, "prior_labels": args.labeled,
                                     "gold_labels": args.gold, "backends": backends,
                                     "p95_on_not_above_off": {b: r["quality_side_by_side"]["p95_on_not_above_off"]
                                                              for b, r in results.items()}}
        else:
            report = {
                "benchmark": "web", "backends": backends, "items": args.items, "classes": args.classes,
                "prior_labels": args.labeled, "gold_labels": args.gold, "server_processes": 1,
                "cpu_cores": os.cpu_count(), "commit": _commit(), "results": results, "targets_met": ok,
            }
        path.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report: {path}")


def _table_rows(table, b: str, rows: dict) -> bool:
    """The full run's rows of one backend; whether its targets are met."""
    one, paced, sat = (rows["label_and_next"], rows["label_and_next_20_annotators"],
                       rows["label_and_next_20_clients_no_think_time"])
    table.add_row(b, "label-and-next, 1 client", str(one["n"]), str(one["median_ms"]), f"p95 {one['p95_ms']}",
                  "p95 < 30 ms")
    table.add_row(b, f"label-and-next, {paced['clients']} annotators (think {paced['think_ms_mean']:.0f} ms)",
                  str(paced["labels_posted"]), str(paced["median_ms"]), f"p95 {paced['p95_ms']}",
                  f"p95 < 100 ms, lost {paced['lost']}")
    table.add_row(b, f"label-and-next, {sat['clients']} clients, no think time",
                  str(sat["labels_posted"]), str(sat["median_ms"]), f"p95 {sat['p95_ms']}",
                  f"{sat['labels_per_s']} labels/s, lost {sat['lost']}")
    table.add_row(b, "baseline: GET /api/me", str(rows["baseline_auth_only_get_me"]["n"]),
                  str(rows["baseline_auth_only_get_me"]["median_ms"]),
                  f"p95 {rows['baseline_auth_only_get_me']['p95_ms']}", "")
    table.add_row(b, f"map ({rows['map_50k']['points']:,} points)", str(rows["map_50k"]["n"]),
                  str(rows["map_50k"]["median_ms"]), f"max {rows['map_50k']['max_ms']}", "< 1000 ms")
    table.add_row(b, "baseline: raw SQL, 50k embeddings", str(rows["baseline_map_raw_sql_50k"]["n"]),
                  str(rows["baseline_map_raw_sql_50k"]["median_ms"]),
                  f"max {rows['baseline_map_raw_sql_50k']['max_ms']}", "")
    no_loss = all(r["lost"] == 0 and r["labels_written"] == r["distinct_items"] and not r["failures"]
                  for r in (paced, sat))
    return no_loss and one["p95_ms"] < 30 and paced["p95_ms"] < 100 and rows["map_50k"]["max_ms"] < 1000


if __name__ == "__main__":
    main()
