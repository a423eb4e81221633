"""Ingest throughput and peak memory.

Generates N small PNGs (unique bytes, nested folders), then ingests them into a
fresh SQLite database in a child process and reports files/s and the child's peak
RSS. Baseline, measured in the same run on the first ``--baseline-files`` files: a
naive loop that reads, hashes and probes each file and inserts it in its own
transaction (what a quick script does).

    python benchmarks/ingest.py [--files 100000] [--workers 4] [--repeats 3]

Targets (issue 2): at least 2,000 files/s on 2 cores and peak RSS under 300 MB.
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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPORT = Path(__file__).parent / "reports" / "ingest.json"


def _make_chunk(args: tuple[str, int, int]) -> int:
    import numpy as np
    from PIL import Image

    root, start, stop = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        folder = Path(root, f"d{i // 1000:03d}", f"e{i % 7}")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i:06d}.png", compress_level=1)
    return stop - start


def generate(root: Path, n: int) -> None:
    step = 2000
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_make_chunk, [(str(root), s, min(s + step, n)) for s in range(0, n, step)]))


CHILD = r"""
import json, resource, sys, time
from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.loaders.ingest import ingest
url, folder, workers = sys.argv[1], sys.argv[2], (int(sys.argv[3]) or None)
upgrade(url)
engine = make_engine(url)
t = time.perf_counter()
report = ingest(engine, folder, workers=workers)
dt = time.perf_counter() - t
print(json.dumps({"new": report.new, "seconds": dt,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = r"""
import hashlib, io, json, os, sys, time
from pathlib import Path
from PIL import Image
from sqlalchemy import insert
from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.schema import items
url, folder, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
upgrade(url)
engine = make_engine(url)
paths = sorted(Path(folder).rglob("*.png"))[:limit]
t = time.perf_counter()
for p in paths:
    data = p.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        im.verify()
    with engine.begin() as conn:
        conn.execute(insert(items).values(uri=p.resolve().as_uri(), sha256=hashlib.sha256(data).hexdigest(),
                                          media_type="image/png", width=w, height=h, status="ok"))
print(json.dumps({"new": len(paths), "seconds": time.perf_counter() - t}))
"""


def run_child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=0, help="0: ingest's default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-files", type=int, default=5_000)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    with tempfile.TemporaryDirectory(prefix="alsql-bench-") as tmp:
        root = Path(tmp, "images")
        t = time.perf_counter()
        generate(root, args.files)
        console.print(f"generated {args.files} PNGs in {time.perf_counter() - t:.1f}s")
        runs = []
        for r in range(args.repeats):
            res = run_child(CHILD, f"sqlite:///{tmp}/ingest{r}.db", str(root), str(args.workers))
            assert res["new"] == args.files, res
            runs.append(res)
            console.print(f"run {r + 1}: {res['new'] / res['seconds']:.0f} files/s, peak RSS {res['peak_rss_mb']:.0f} MB")
        base = run_child(BASELINE, f"sqlite:///{tmp}/baseline.db", str(root), str(args.baseline_files))

    rate = statistics.median(r["new"] / r["seconds"] for r in runs)
    rss = statistics.median(r["peak_rss_mb"] for r in runs)
    base_rate = base["new"] / base["seconds"]
    table = Table(title=f"ingest of {args.files:,} PNGs into SQLite (median of {args.repeats})")
    for col in ("path", "files/s", "peak RSS MB", "target", "met"):
        table.add_column(col)
    table.add_row("alsql ingest", f"{rate:,.0f}", f"{rss:.0f}", ">= 2,000 files/s, < 300 MB",
                  "yes" if rate >= 2000 and rss < 300 else "NO")
    table.add_row(f"baseline: row-at-a-time ({args.baseline_files:,} files)", f"{base_rate:,.0f}", "", "", "")
    table.add_row("speed-up over baseline", f"{rate / base_rate:.1f}x", "", "", "")
    console.print(table)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({
        "benchmark": "ingest", "files": args.files, "workers": args.workers, "cpus": os.cpu_count(),
        "median_files_per_s": rate, "median_peak_rss_mb": rss, "runs": runs,
        "baseline_row_at_a_time": {"files": base["new"], "files_per_s": base_rate},
        "targets": {"files_per_s": 2000, "peak_rss_mb": 300},
        "met": rate >= 2000 and rss < 300,
    }, indent=2))
    console.print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
