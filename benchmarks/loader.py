"""Loader benchmark: flat memory, pager throughput, decode throughput, remote-store concurrency.

Each figure sits beside a baseline measured in the same run:

1. Peak RSS iterating ``training_set`` (metadata only, shuffled, one child process per
   size) vs ``pandas.read_sql`` of the same view. Target: growth from the smallest to
   the largest size at most 50 MB.
2. Metadata rows/s on SQLite: the keyset pager, and the dataset's shuffled row stream,
   vs a raw sqlite3 keyset cursor running the same SQL. Target: >= 500,000/s, >= 1/3 raw.
3. Decoded 32x32 PNGs/s through ``DataLoader(num_workers=2)``: ``SqlImageDataset`` vs a
   plain list-of-paths dataset doing the same decode. Target: >= 0.9x.
4. A store that sleeps 20 ms per object, 32 reads in flight: objects/s (baseline: one
   read at a time). Target: >= 1,200/s.

Databases are populated with bulk SQL (a recursive CTE), metadata only.

    python benchmarks/loader.py [--sizes 100000,1000000,5000000] [--pngs 20000] [--quick]
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

REPORT = Path(__file__).parent / "reports" / "loader.json"
NOW = "'2024-01-01 00:00:00'"


def populate(url: str, n: int, uri_sql: str = "'file:///bench/' || printf('%09d', i) || '.png'") -> int:
    """A migrated SQLite database with ``n`` ok items, all labelled in project 1 (bulk SQL)."""
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade

    upgrade(url)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", ["a", "b", "c", "d"]).project_id
        conn.exec_driver_sql(
            f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {int(n)}) "
            f"INSERT INTO items (item_id, uri, status, ingested_at) SELECT i, {uri_sql}, 'ok', {NOW} FROM s"
        )
        conn.exec_driver_sql(
            "INSERT INTO annotations (project_id, item_id, annotation_id, class_id, created_at, source) "
            f"SELECT {pid}, item_id, item_id, item_id % 4, {NOW}, 'import' FROM items"
        )
    engine.dispose()
    return pid


RSS_CHILD = r"""
import sys, time
mode, url = sys.argv[1], sys.argv[2]
import torch, pandas  # both sides pay the same imports
from alsql.db import make_engine
from alsql.loaders.datasets import SqlViewDataset
t = time.perf_counter()
if mode == "dataset":
    n = sum(1 for _ in SqlViewDataset(url, 1, seed=0))
else:
    n = len(pandas.read_sql("SELECT item_id, uri, class_id FROM training_set WHERE project_id = 1", make_engine(url)))
# VmHWM: this process's own peak (ru_maxrss would carry over the forking parent's size across exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(n, hwm / 1024, time.perf_counter() - t)
"""


def peak_rss(url: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, mode, url], capture_output=True, text=True, check=True)
    n, mb, s = out.stdout.split()
    return {"rows": int(n), "peak_rss_mb": round(float(mb), 1), "seconds": round(float(s), 2)}


def pager_rates(url: str, repeats: int) -> dict:
    import sqlite3

    from sqlalchemy.dialects import sqlite

    from alsql.db import make_engine
    from alsql.loaders.datasets import SqlViewDataset
    from alsql.loaders.pager import iter_pages, page_query

    engine = make_engine(url)
    sql = page_query("training_set", bounded=False).compile(dialect=sqlite.dialect()).string

    def pager():
        return sum(len(p) for p in iter_pages(engine, 1, "training_set", after=0, page_rows=4096))

    def dataset():
        return sum(1 for _ in SqlViewDataset(url, 1, seed=0))

    def raw():
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        n, last = 0, 0
        while True:
            rows = con.execute(sql, (1, last, 4096, 0)).fetchall()
            n += len(rows)
            if len(rows) < 4096:
                con.close()
                return n
            last = rows[-1][0]

    out = {}
    for name, fn in (("raw_keyset_cursor", raw), ("pager", pager), ("dataset_rows", dataset)):
        rates, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            n = fn()
            rates.append(n / (time.perf_counter() - t))
            cpu.append(n / (time.process_time() - c))
        # rows per CPU second of this process (SQLite runs in-process): the rate on an idle core
        out[name] = {"rows": n, "rows_per_s": round(statistics.median(rates)), "runs": [round(r) for r in rates],
                     "rows_per_cpu_s": round(statistics.median(cpu))}
    engine.dispose()
    return out


def _decode(data_or_path):
    import io

    from PIL import Image

    from alsql.loaders.datasets import to_tensor

    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        return to_tensor(im.convert("RGB"))


class PathsDataset:
    """The baseline: a list of paths, each opened and decoded like SqlImageDataset does."""

    def __init__(self, paths, labels):
        self.paths, self.labels = paths, labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return _decode(self.paths[i]), self.labels[i], i


def png_rates(folder: Path, n: int, repeats: int) -> dict:
    import numpy as np
    from PIL import Image
    from torch.utils.data import DataLoader

    from alsql.loaders.datasets import SqlImageDataset

    img_dir = folder / "png"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(img_dir / f"{i:07d}.png")
    url = f"sqlite:///{folder / 'png.db'}"
    populate(url, n, uri_sql=f"'file://{img_dir.as_posix()}/' || printf('%07d', i - 1) || '.png'")
    paths = [str(img_dir / f"{i:07d}.png") for i in range(n)]

    def run(ds, **kw):
        t = time.perf_counter()
        seen = sum(len(b[2]) for b in DataLoader(ds, batch_size=256, num_workers=2, **kw))
        assert seen == n, (seen, n)
        return n / (time.perf_counter() - t)

    out = {"baseline_paths": [], "sql_dataset": []}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        out["baseline_paths"].append(run(PathsDataset(paths, [i % 4 for i in range(n)]), shuffle=True))
        out["sql_dataset"].append(run(SqlImageDataset(url, 1, seed=0)))
    res = {k: {"images_per_s": round(statistics.median(v)), "runs": [round(r) for r in v]} for k, v in out.items()}
    res["images"] = n
    res["ratio"] = round(res["sql_dataset"]["images_per_s"] / res["baseline_paths"]["images_per_s"], 3)
    return res


class SleepyStore:
    """Every read takes 20 ms (a cloud store's latency) and returns one small PNG."""

    def __init__(self):
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (10, 20, 30)).save(buf, format="PNG")
        self.data = buf.getvalue()

    def open(self, uri):
        time.sleep(0.020)
        return self.data


def sleepy_rates(folder: Path, n: int, repeats: int) -> dict:
    from alsql.loaders.datasets import SqlImageDataset
    from alsql.stores import register_store

    register_store("sleepy", SleepyStore)
    url = f"sqlite:///{folder / 'sleepy.db'}"
    populate(url, n, uri_sql="'sleepy://bench/' || i || '.png'")

    def run(workers, limit):
        t = time.perf_counter()
        k = 0
        for _ in SqlImageDataset(url, 1, fetch_workers=workers):
            k += 1
            if k == limit:
                break
        return k / (time.perf_counter() - t)

    serial = run(1, 100)
    rates = [run(32, n) for _ in range(repeats)]
    return {"objects": n, "in_flight": 32, "objects_per_s": round(statistics.median(rates)),
            "runs": [round(r) for r in rates], "baseline_one_in_flight_per_s": round(serial, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,5000000", help="training-view rows for the memory runs")
    ap.add_argument("--baseline-max", type=int, default=5_000_000, help="largest size the pandas baseline runs at")
    ap.add_argument("--pngs", type=int, default=20_000)
    ap.add_argument("--sleepy", type=int, default=4_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat (< 1 minute)")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.pngs, args.sleepy, args.repeats = "20000,100000", 2000, 800, 1
    sizes = [int(s) for s in args.sizes.split(",")]

    from rich.console import Console
    from rich.table import Table

    report: dict = {"sizes": sizes, "memory": {}, "quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in sizes:
            url = f"sqlite:///{tmp / f'rows{n}.db'}"
            t = time.perf_counter()
            populate(url, n)
            row = {"populate_s": round(time.perf_counter() - t, 1), "dataset": peak_rss(url, "dataset")}
            if n <= args.baseline_max:
                row["pandas_read_sql"] = peak_rss(url, "pandas")
            report["memory"][n] = row
            if n == min(max(sizes), 1_000_000) or n == max(s for s in sizes if s <= 1_000_000):
                report["metadata"] = {"view_rows": n, **pager_rates(url, args.repeats)}
            Path(url.removeprefix("sqlite:///")).unlink()
        report["png_decode"] = png_rates(tmp, args.pngs, args.repeats)
        report["slow_store"] = sleepy_rates(tmp, args.sleepy, args.repeats)

    lo, hi = report["memory"][sizes[0]], report["memory"][sizes[-1]]
    growth = hi["dataset"]["peak_rss_mb"] - lo["dataset"]["peak_rss_mb"]
    md = report["metadata"]
    report["acceptance"] = {
        "rss_growth_mb": round(growth, 1),
        "rss_growth_ok": growth <= 50,
        "pandas_rss_growth_mb": round(hi["pandas_read_sql"]["peak_rss_mb"] - lo["pandas_read_sql"]["peak_rss_mb"], 1)
        if "pandas_read_sql" in hi else None,
        "pager_rows_per_s": md["pager"]["rows_per_s"],
        "pager_vs_raw": round(md["pager"]["rows_per_s"] / md["raw_keyset_cursor"]["rows_per_s"], 3),
        "pager_rows_per_cpu_s": md["pager"]["rows_per_cpu_s"],
        "pager_vs_raw_per_cpu_s": round(md["pager"]["rows_per_cpu_s"] / md["raw_keyset_cursor"]["rows_per_cpu_s"], 3),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "pager_ok": md["pager"]["rows_per_s"] >= 500_000
        and md["pager"]["rows_per_s"] >= md["raw_keyset_cursor"]["rows_per_s"] / 3,
        "png_ratio": report["png_decode"]["ratio"],
        "png_ok": report["png_decode"]["ratio"] >= 0.9,
        "slow_store_objects_per_s": report["slow_store"]["objects_per_s"],
        "slow_store_ok": report["slow_store"]["objects_per_s"] >= 1200,
    }

    console = Console()
    t = Table(title="Peak RSS iterating training_set (MB)")
    for c in ("rows", "SqlViewDataset", "pandas.read_sql", "populate s"):
        t.add_column(c, justify="right")
    for n, row in report["memory"].items():
        t.add_row(f"{n:,}", str(row["dataset"]["peak_rss_mb"]),
                  str(row.get("pandas_read_sql", {}).get("peak_rss_mb", "-")), str(row["populate_s"]))
    console.print(t)
    t = Table(title=f"Throughput (medians of {args.repeats})")
    t.add_column("what")
    t.add_column("ours", justify="right")
    t.add_column("baseline", justify="right")
    t.add_column("ratio", justify="right")
    raw = md["raw_keyset_cursor"]["rows_per_s"]
    t.add_row("metadata rows/s: pager", f"{md['pager']['rows_per_s']:,}", f"{raw:,} raw cursor",
              f"{md['pager']['rows_per_s'] / raw:.2f}")
    rawc = md["raw_keyset_cursor"]["rows_per_cpu_s"]
    t.add_row("metadata rows per CPU s: pager", f"{md['pager']['rows_per_cpu_s']:,}", f"{rawc:,} raw cursor",
              f"{md['pager']['rows_per_cpu_s'] / rawc:.2f}")
    t.add_row("metadata rows/s: dataset (shuffled)", f"{md['dataset_rows']['rows_per_s']:,}", f"{raw:,} raw cursor",
              f"{md['dataset_rows']['rows_per_s'] / raw:.2f}")
    p = report["png_decode"]
    t.add_row("32x32 PNG/s, 2 workers", f"{p['sql_dataset']['images_per_s']:,}",
              f"{p['baseline_paths']['images_per_s']:,} list of paths", f"{p['ratio']:.2f}")
    s = report["slow_store"]
    t.add_row("20 ms store, 32 in flight, objects/s", f"{s['objects_per_s']:,}",
              f"{s['baseline_one_in_flight_per_s']} one in flight", f"{s['objects_per_s'] / s['baseline_one_in_flight_per_s']:.1f}")
    console.print(t)
    console.print(report["acceptance"])
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"report: {args.report}")


if __name__ == "__main__":
    main()
