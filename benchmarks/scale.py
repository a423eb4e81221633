"""Scale benchmark: memory of `alsql status` and `alsql ingest --attributes`, wall time of
`alsql marts build` and `alsql validate`, on this checkout beside an older one.

Every command runs as its own process (``python -c "from alsql.cli import main; main()"``)
with ``PYTHONPATH`` set to the checkout under test, so both checkouts share one virtual
environment; peak RSS is the child's ``ru_maxrss`` from ``os.wait4``.

- status: a SQLite database of N items generated straight into SQL (one INSERT ... SELECT;
  1 in 50 corrupt, 1 in 100 missing) and a project; peak RSS of ``alsql status``.
- attributes: ``alsql ingest`` of a folder of 3 PNG files with an attributes CSV of N rows
  (the CSV is checked whole, 3 of its rows match files); peak RSS.
- marts / validate at the largest N: wall time of ``alsql marts build`` and ``alsql
  validate``, and whether ``marts build --select item_index`` succeeds on a database where
  the full build never ran. Items only, unless ``--predictions``: then the items also
  carry entity, attributes and capture time, and one model predicted every ok item, with
  labels and an evaluation round (``add_predictions``), which is what the marts read at
  scale; each model's own time (dbt's ``run_results.json``) is reported beside the total.

    python benchmarks/scale.py --baseline OLD_CHECKOUT [--code CHECKOUT] [--sizes 20000 200000 1000000]
                               [--steps status attributes marts validate] [--predictions] [--no-baseline]
                               [--db-cache DIR] [--note TEXT] [--backend sqlite|postgresql]

Reports the median of ``--repeats`` runs per cell (the slow cells at the largest size
only; with repeats, only the first `--select item_index` run is on a fresh database);
saves ``benchmarks/reports/scale.json``. ``--db-cache DIR`` keeps each generated database
in DIR and copies it for later runs instead of generating it again (5M rows with
predictions take minutes to generate); every run still starts on a fresh copy, and then
each repeat of ``marts build`` is a first build too (a fresh copy, a new work dir: no
partial parse, no marts to drop), its dbt nodes those of the median run.

``--backend postgresql`` generates the same rows on PostgreSQL (server ``ALSQL_TEST_POSTGRES_URL``,
default the local one as user postgres), in SQL on the server (``generate_series``), in a fresh
database of a unique name per size, dropped at the end; the items' entity, attributes and
capture time are written by the items' INSERT itself rather than by a later UPDATE (the same
rows, no dead tuples), and the generated database is vacuumed and analyzed before any timing.
``--db-cache`` is SQLite only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = Path(__file__).parent / "reports" / "scale.json"
STEPS = ("status", "attributes", "select", "marts", "validate")
PG_ADMIN = os.environ.get("ALSQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


REPEATS = 1


def alsql(code: Path, *args: str, cwd: Path) -> tuple[int, float, float, str]:
    """``alsql ARGS`` from checkout ``code`` REPEATS times: (worst exit code, median seconds,
    largest peak RSS MB, last output tail)."""
    runs = [_alsql_once(code, *args, cwd=cwd) for _ in range(REPEATS)]
    return (max(r[0] for r in runs), statistics.median(r[1] for r in runs), max(r[2] for r in runs), runs[-1][3])


def _alsql_once(code: Path, *args: str, cwd: Path) -> tuple[int, float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-c", "from alsql.cli import main; main()", *args],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t
        out.seek(0)
        tail = out.read()[-400:].decode(errors="replace")
    return proc.returncode, seconds, usage.ru_maxrss / 1024, tail


def make_db(path: Path, n: int) -> str:
    """A SQLite database at the head revision with N items and one project."""
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade

    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        create_project(conn, "bench", ["a", "b", "c"])
        conn.exec_driver_sql(
            "INSERT INTO items (item_id, uri, status, width, height, ingested_at) "
            "SELECT i, 'file:///b/' || i, CASE WHEN i % 50 = 0 THEN 'corrupt' WHEN i % 100 = 1 THEN 'missing' "
            "ELSE 'ok' END, 64, 64, '2024-01-01 00:00:00' FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL "
            f"SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s)")
    engine.dispose()
    return url


def _pg_admin():
    from sqlalchemy import create_engine

    from alsql.db import normalize_url

    return create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")


def make_pg_db(n: int, predictions: bool) -> tuple[str, str]:
    """A fresh PostgreSQL database of a unique name at the head revision with the N items of
    ``make_db`` and one project: (name, URL). With ``predictions``, the items' entity,
    attributes and capture time of ``add_predictions`` come with the INSERT."""
    from sqlalchemy import text

    from alsql.catalog import create_project
    from alsql.db import make_engine, normalize_url, write_transaction
    from alsql.migrations import upgrade

    n = int(n)
    name = f"alsql_scale_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = normalize_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = make_engine(url)
        extra_cols = ", entity, captured_at, attributes" if predictions else ""
        extra = (", 'cam-' || mod(i, 97), make_timestamptz(2024, 1 + mod(i, 12)::int, 15, 10, 0, 0, 'UTC'), "
                 "jsonb_build_object('lighting', CASE WHEN mod(i, 2) = 1 THEN 'night' ELSE 'day' END, "
                 "'site', 'site-' || mod(i, 13))") if predictions else ""
        with write_transaction(engine) as conn:
            create_project(conn, "bench", ["a", "b", "c"])
            conn.exec_driver_sql(
                f"INSERT INTO items (item_id, uri, status, width, height, ingested_at{extra_cols}) "
                "SELECT i, 'file:///b/' || i, CASE WHEN mod(i, 50) = 0 THEN 'corrupt' WHEN mod(i, 100) = 1 "
                f"THEN 'missing' ELSE 'ok' END, 64, 64, TIMESTAMPTZ '2024-01-01 00:00:00+00'{extra} "
                f"FROM generate_series(1, {n}) AS i")
        engine.dispose()
    except BaseException:
        drop_pg_db(name)
        raise
    return name, url


def drop_pg_db(name: str) -> None:
    from sqlalchemy import text

    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def vacuum_analyze(url: str) -> None:
    """VACUUM (ANALYZE) a PostgreSQL database: statistics, hint bits and visibility map
    settled before the timed runs (no autovacuum of the fresh tables during them)."""
    from alsql.db import make_engine

    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
    engine.dispose()


def add_predictions(url: str, n: int, evaluation: int = 2000, labels: int = 5000) -> None:
    """What the marts read at scale, on a database from ``make_db``: items with an entity
    (97 cameras), ``lighting`` / ``site`` attributes and a capture time over 12 months; one
    model's prediction of every ok item (3 classes); ``labels`` labeled items, ``evaluation`` of them in an evaluation
    round. All generated in SQL."""
    from sqlalchemy import insert

    from alsql.db import make_engine, write_transaction
    from alsql.schema import model_versions, rounds

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        engine.dispose()
        _add_predictions_pg(url, n, evaluation, labels)
        return
    with write_transaction(engine) as conn:
        conn.exec_driver_sql(
            "UPDATE items SET entity = 'cam-' || (item_id % 97), captured_at = '2024-' || "
            "substr('0' || (1 + item_id % 12), -2) || '-15 10:00:00', attributes = json_object('lighting', "
            "CASE WHEN item_id % 2 THEN 'night' ELSE 'day' END, 'site', 'site-' || (item_id % 13))")
        pid = conn.exec_driver_sql("SELECT project_id FROM projects").scalar_one()
        conn.execute(insert(model_versions).values(model_id=1, project_id=pid, architecture="cnn"))
        conn.exec_driver_sql(
            "INSERT INTO predictions (model_id, item_id, class_id, confidence, margin, entropy, probs) "
            "SELECT 1, item_id, (item_id * 7) % 3, 0.4 + (item_id % 600) / 1000.0, (item_id % 400) / 1000.0, 0.5, "
            "zeroblob(6) FROM items WHERE status = 'ok'")
        conn.exec_driver_sql(
            "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, created_at, source) "
            f"SELECT {pid}, item_id, item_id, (item_id * 7 + item_id / 5) % 3, '2024-03-01 00:00:00', 'ui' "
            f"FROM items WHERE status = 'ok' AND item_id % {max(1, n // labels)} = 3 LIMIT {labels}")
        conn.execute(insert(rounds).values(round_id=1, project_id=pid, strategy="random", purpose="evaluation",
                                           budget=evaluation))
        conn.exec_driver_sql(
            "INSERT INTO round_items (round_id, rank, item_id, status) SELECT 1, row_number() OVER "
            f"(ORDER BY item_id) - 1, item_id, 'labeled' FROM annotations LIMIT {evaluation}")
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _add_predictions_pg(url: str, n: int, evaluation: int, labels: int) -> None:
    """``add_predictions`` on a database from ``make_pg_db(n, predictions=True)`` (which wrote
    the items' entity, attributes and capture time): the same rows, in PostgreSQL's SQL. The
    LIMITs take the lowest item ids, as SQLite's scans in item order do."""
    from sqlalchemy import insert

    from alsql.db import make_engine, write_transaction
    from alsql.schema import model_versions, rounds

    n, evaluation, labels = int(n), int(evaluation), int(labels)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        pid = int(conn.exec_driver_sql("SELECT project_id FROM projects").scalar_one())
        conn.execute(insert(model_versions).values(model_id=1, project_id=pid, architecture="cnn"))
        conn.exec_driver_sql(
            "INSERT INTO predictions (model_id, item_id, class_id, confidence, margin, entropy, probs) "
            "SELECT 1, item_id, mod(item_id * 7, 3), 0.4 + mod(item_id, 600) / 1000.0, mod(item_id, 400) / 1000.0, "
            "0.5, decode('000000000000', 'hex') FROM items WHERE status = 'ok'")
        conn.exec_driver_sql(
            "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, created_at, source) "
            f"SELECT {pid}, item_id, item_id, mod(item_id * 7 + item_id / 5, 3), TIMESTAMPTZ '2024-03-01 00:00:00+00', "
            f"'ui' FROM items WHERE status = 'ok' AND mod(item_id, {max(1, n // labels)}) = 3 "
            f"ORDER BY item_id LIMIT {labels}")
        conn.execute(insert(rounds).values(round_id=1, project_id=pid, strategy="random", purpose="evaluation",
                                           budget=evaluation))
        conn.exec_driver_sql(
            "INSERT INTO round_items (round_id, rank, item_id, status) SELECT 1, row_number() OVER "
            f"(ORDER BY item_id) - 1, item_id, 'labeled' FROM annotations ORDER BY item_id LIMIT {evaluation}")
    engine.dispose()


def fresh_pg_db(n: int, predictions: bool) -> tuple[str, str]:
    """A fresh PostgreSQL database of N items (with ``add_predictions`` when ``predictions``),
    vacuumed and analyzed: (name, URL); dropped again when generating it fails."""
    name, url = make_pg_db(n, predictions)
    try:
        if predictions:
            add_predictions(url, n)
        vacuum_analyze(url)
    except BaseException:
        drop_pg_db(name)
        raise
    return name, url


def fresh_db(path: Path, n: int, predictions: bool, cache: Path | None) -> str:
    """The database of N items (with ``add_predictions`` when ``predictions``) at ``path``:
    generated there, or copied from ``cache`` where an earlier run left it (generated into
    the cache first when missing)."""
    if cache is None:
        url = make_db(path, n)
        if predictions:
            add_predictions(url, n)
        return url
    cache.mkdir(parents=True, exist_ok=True)
    kept = cache / f"scale-{n}{'-predictions' if predictions else ''}.db"
    if not kept.is_file():
        partial = kept.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        fresh_db(partial, n, predictions, None)
        partial.rename(kept)
    shutil.copyfile(kept, path)
    return f"sqlite:///{path}"


def load_averages() -> list[float]:
    """The 1, 5 and 15 minute load averages (as ``uptime`` prints them)."""
    return [round(x, 2) for x in os.getloadavg()]


TOP_NODES = 12
PG_NOTE = ("; on PostgreSQL dbt runs its nodes on several threads, so the nodes' times overlap: their sums can "
           "exceed the wall time, and '(outside nodes)' (the wall time less those sums) is then no measure of dbt's "
           "own overhead")


def dbt_timings(work_dir: Path, top: int | None = None) -> dict[str, float]:
    """The slowest nodes of the last dbt run in ``work_dir`` (models and tests), seconds each
    (``--nodes`` of them), and the sums of all its tests and all its models."""
    top = TOP_NODES if top is None else top
    path = work_dir / "target" / "run_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())["results"]
    nodes = sorted(((r["execution_time"], r["unique_id"].split(".", 1)[0] + " " + r["unique_id"].split(".")[2])
                    for r in results), reverse=True)
    out = {name: round(t, 2) for t, name in nodes[:top]}
    out["(all tests)"] = round(sum(r["execution_time"] for r in results if r["unique_id"].startswith("test.")), 2)
    out["(all models)"] = round(sum(r["execution_time"] for r in results if r["unique_id"].startswith("model.")), 2)
    out["(all seeds)"] = round(sum(r["execution_time"] for r in results if r["unique_id"].startswith("seed.")), 2)
    return out


def marts_build(code: Path, work: Path, n: int, predictions: bool, cache: Path | None, url: str | None = None) -> dict:
    """``alsql marts build`` REPEATS times: the median's row (seconds, its dbt nodes, load
    averages at its start and end). With ``cache``, every run is a first build: a fresh
    copy of the database and a new work dir (no partial parse, no marts to drop);
    without, the runs repeat on the same database and work dir. ``url``: the database
    (default the SQLite file ``alsql.db`` in ``work``)."""
    url = url or f"sqlite:///{work / 'alsql.db'}"
    runs = []
    for k in range(REPEATS):
        if cache is not None and k:
            fresh_db(work / "alsql.db", n, predictions, cache)
        dbt_dir = work / (f"dbt-{k}" if cache is not None else "dbt")
        load = load_averages()
        rc, s, mb, _tail = _alsql_once(code, "--db", url, "marts", "build",
                                       "--work-dir", str(dbt_dir), cwd=work)
        nodes = dbt_timings(dbt_dir)
        if nodes:
            # dbt's start-up, parsing and bookkeeping between nodes (the wall time less
            # every node's own time)
            nodes["(outside nodes)"] = round(s - nodes["(all tests)"] - nodes["(all models)"]
                                             - nodes.get("(all seeds)", 0), 2)
        runs.append({"step": "marts build", "rows": n, "rc": rc, "seconds": s, "peak_rss_mb": mb,
                     "load_average_1m": load[0], "load_averages": load, "load_after": load_averages(),
                     "nodes": nodes})
    ranked = sorted(runs, key=lambda r: r["seconds"])
    row = dict(ranked[(len(ranked) - 1) // 2])
    row.update(seconds=statistics.median(r["seconds"] for r in runs), rc=max(r["rc"] for r in runs),
               peak_rss_mb=max(r["peak_rss_mb"] for r in runs), runs_seconds=[round(r["seconds"], 2) for r in runs],
               runs_load_averages=[r["load_averages"] for r in runs])
    return row


def make_folder(root: Path, n: int) -> tuple[Path, Path]:
    """3 PNG files and an attributes CSV of N rows (3 of them name the files)."""
    import numpy as np
    from PIL import Image

    folder = root / "images"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(np.full((8, 8, 3), k * 60, np.uint8)).save(folder / f"img-{k}.png")
    csv = root / "attributes.csv"
    with csv.open("w") as fh:
        fh.write("path,entity,captured_at,latitude,longitude,lighting,site\n")
        for i in range(n):
            name = f"img-{i}.png" if i < 3 else f"other/img-{i:08d}.png"
            fh.write(f"{name},cam-{i % 97:03d},2024-03-01T10:00:00Z,48.1,11.5,{'night' if i % 2 else 'day'},"
                     f"site-{i % 13}\n")
    return folder, csv


def measure(args: argparse.Namespace, code: Path, name: str, work: Path, n: int, url: str, rows: list) -> None:
    """The steps of ``args.steps`` at N rows for checkout ``code`` on database ``url``, appended to ``rows``."""
    if "status" in args.steps:
        rc, s, mb, tail = alsql(code, "--db", url, "status", cwd=work)
        rows.append({"step": "status", "rows": n, "code": name, "rc": rc, "seconds": s,
                     "peak_rss_mb": mb})
    if "attributes" in args.steps:
        folder, csv = make_folder(work, n)
        rc, s, mb, tail = alsql(code, "--db", url, "ingest", str(folder), "--attributes", str(csv),
                                cwd=work)
        rows.append({"step": "ingest --attributes", "rows": n, "code": name, "rc": rc, "seconds": s,
                     "peak_rss_mb": mb})
    if n == max(args.sizes) and "select" in args.steps:
        rc, s, mb, tail = alsql(code, "--db", url, "marts", "build", "--select", "item_index",
                                "--work-dir", str(work / "dbt-select"), cwd=work)
        rows.append({"step": "marts build --select item_index (fresh)", "rows": n, "code": name,
                     "rc": rc, "seconds": s, "peak_rss_mb": mb})
    if n == max(args.sizes) and "marts" in args.steps:
        rows.append(marts_build(code, work, n, args.predictions, args.db_cache, url))
        rows[-1]["code"] = name
    if n == max(args.sizes) and "validate" in args.steps:
        load = load_averages()
        rc, s, mb, tail = alsql(code, "--db", url, "validate", cwd=work)
        rows.append({"step": "validate", "rows": n, "code": name, "rc": rc, "seconds": s,
                     "peak_rss_mb": mb, "load_average_1m": load[0], "load_averages": load,
                     "load_after": load_averages()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, help="an older checkout of alsql to compare with (required "
                    "unless --no-baseline)")
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout measured as 'this' (default: this one)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, help="what to measure")
    ap.add_argument("--repeats", type=int, default=1, help="runs per cell (median seconds, largest RSS); "
                    "status and marts/validate repeat on the same database, ingest re-ingests its folder")
    ap.add_argument("--predictions", action="store_true", help="marts / validate over predictions, labels and "
                    "attributes too (add_predictions)")
    ap.add_argument("--no-baseline", action="store_true", help="measure --code only (slow cells at large sizes)")
    ap.add_argument("--db-cache", type=Path, help="keep generated databases here and copy them for later runs")
    ap.add_argument("--note", default="", help="appended to the report's note")
    ap.add_argument("--nodes", type=int, default=12, help="the slowest dbt nodes to report per build")
    ap.add_argument("--report", type=Path, default=REPORT)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                    help="where the databases are generated and measured (postgresql: a fresh database per size, "
                         "dropped at the end)")
    args = ap.parse_args()
    if args.baseline is None and not args.no_baseline:
        ap.error("--baseline is required unless --no-baseline")
    if args.backend == "postgresql" and args.db_cache is not None:
        ap.error("--db-cache is supported on sqlite only (every postgresql run generates a fresh database)")
    global REPEATS, TOP_NODES
    REPEATS = args.repeats
    TOP_NODES = args.nodes
    codes = {"this": args.code.resolve()} if args.no_baseline else {
        "this": args.code.resolve(), "baseline": args.baseline.resolve()}
    commits = {k: subprocess.run(["git", "-C", str(c), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip() for k, c in codes.items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="alsql-scale-") as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            for name, code in codes.items():
                work = tmp / f"{name}-{n}"
                work.mkdir()
                pg_name = None
                if args.backend == "postgresql":
                    pg_name, url = fresh_pg_db(n, args.predictions and n == max(args.sizes))
                else:
                    url = fresh_db(work / "alsql.db", n, args.predictions and n == max(args.sizes), args.db_cache)
                try:
                    measure(args, code, name, work, n, url, rows)
                finally:
                    if pg_name is not None:
                        drop_pg_db(pg_name)
                    (work / "alsql.db").unlink(missing_ok=True)
                print(f"{n:>9,} {name}: " + ", ".join(f"{r['step']} {r['peak_rss_mb']:.0f} MB {r['seconds']:.1f} s "
                                                       f"rc={r['rc']}" for r in rows if r["rows"] == n
                                                       and r["code"] == name), flush=True)
    print(f"\n{'step':<42} {'rows':>9} {'code':<9} {'rc':>3} {'seconds':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['step']:<42} {r['rows']:>9,} {r['code']:<9} {r['rc']:>3} {r['seconds']:>8.1f} "
              f"{r['peak_rss_mb']:>12.0f}")
    args.report.parent.mkdir(exist_ok=True)
    for r in rows:
        if r.get("nodes"):
            print(f"{r['step']}, {r['rows']:,} rows, {r['code']}: slowest dbt nodes")
        for node, t in (r.get("nodes") or {}).items():
            print(f"    {node:<60} {t:>8.1f} s")
    args.report.write_text(json.dumps({"sizes": args.sizes, "commits": commits, "runs": args.repeats, "rows": rows,
                                       "predictions": args.predictions, "backend": args.backend,
                                       "note": f"median of {args.repeats} run(s) per cell on a shared 2-core machine; "
                                               "load averages (1, 5, 15 min) at the start and end of each timed step"
                                               + (PG_NOTE if args.backend == "postgresql" else "")
                                               + (f". {args.note}" if args.note else "")}, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
