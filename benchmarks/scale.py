"""Scale benchmark: memory of `alsql status` and `alsql ingest --attributes`, wall time of
`alsql marts build` and `alsql validate`, on this checkout beside an older one.

Every command runs as its own process (``python -c "from alsql.cli import main; main()"``)
with ``PYTHONPATH`` set to the checkout under test, so both checkouts share one virtual
environment; peak RSS is the child's ``ru_maxrss`` from ``os.wait4``.

- status: a SQLite database of N items generated straight into SQL (one INSERT ... SELECT;
  1 in 50 corrupt, 1 in 100 missing) and a project; peak RSS of ``alsql status``.
- attributes: ``alsql ingest`` of a folder of 3 PNG files with an attributes CSV of N rows
  (the CSV is checked whole, 3 of its rows match files); peak RSS.
- marts / validate at the largest N (items only, no predictions): wall time of
  ``alsql marts build`` and ``alsql validate``, and whether ``marts build --select
  item_index`` succeeds on a database where the full build never ran.

    python benchmarks/scale.py --baseline OLD_CHECKOUT [--code CHECKOUT] [--sizes 20000 200000 1000000]

Reports the median of ``--repeats`` runs per cell (the slow cells at the largest size
only; with repeats, only the first `--select item_index` run is on a fresh database);
saves ``benchmarks/reports/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = Path(__file__).parent / "reports" / "scale.json"
STEPS = ("status", "attributes", "marts", "validate")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="an older checkout of alsql to compare with")
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout measured as 'this' (default: this one)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS, help="what to measure")
    ap.add_argument("--repeats", type=int, default=1, help="runs per cell (median seconds, largest RSS); "
                    "status and marts/validate repeat on the same database, ingest re-ingests its folder")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    global REPEATS
    REPEATS = args.repeats
    codes = {"this": args.code.resolve(), "baseline": args.baseline.resolve()}
    commits = {k: subprocess.run(["git", "-C", str(c), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip() for k, c in codes.items()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="alsql-scale-") as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            for name, code in codes.items():
                work = tmp / f"{name}-{n}"
                work.mkdir()
                url = make_db(work / "alsql.db", n)
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
                if n == max(args.sizes) and "marts" in args.steps:
                    rc, s, mb, tail = alsql(code, "--db", url, "marts", "build", "--select", "item_index",
                                            "--work-dir", str(work / "dbt-select"), cwd=work)
                    rows.append({"step": "marts build --select item_index (fresh)", "rows": n, "code": name,
                                 "rc": rc, "seconds": s, "peak_rss_mb": mb})
                    rc, s, mb, tail = alsql(code, "--db", url, "marts", "build", "--work-dir", str(work / "dbt"),
                                            cwd=work)
                    rows.append({"step": "marts build", "rows": n, "code": name, "rc": rc, "seconds": s,
                                 "peak_rss_mb": mb})
                if n == max(args.sizes) and "validate" in args.steps:
                    rc, s, mb, tail = alsql(code, "--db", url, "validate", cwd=work)
                    rows.append({"step": "validate", "rows": n, "code": name, "rc": rc, "seconds": s,
                                 "peak_rss_mb": mb})
                (work / "alsql.db").unlink()
                print(f"{n:>9,} {name}: " + ", ".join(f"{r['step']} {r['peak_rss_mb']:.0f} MB {r['seconds']:.1f} s "
                                                       f"rc={r['rc']}" for r in rows if r["rows"] == n
                                                       and r["code"] == name), flush=True)
    print(f"\n{'step':<42} {'rows':>9} {'code':<9} {'rc':>3} {'seconds':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['step']:<42} {r['rows']:>9,} {r['code']:<9} {r['rc']:>3} {r['seconds']:>8.1f} "
              f"{r['peak_rss_mb']:>12.0f}")
    args.report.parent.mkdir(exist_ok=True)
    args.report.write_text(json.dumps({"sizes": args.sizes, "commits": commits, "runs": args.repeats, "rows": rows,
                                       "note": f"median of {args.repeats} run(s) per cell on a shared 2-core machine"}, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
