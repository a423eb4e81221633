"""Inference benchmark: where the time of ``alsql infer`` goes, and claim workers on two cores.

One database (SQLite, and PostgreSQL for the claim workers) holds ``--items`` ok image items
(``--size`` px RGB PNGs: ``--distinct`` files, hard-linked under one name per item, so the
page cache holds them all and every item is decoded) and one project with a fresh
``cnn`` model (untrained weights: the forward pass costs the same). Every measured run
scores a model version of its own (same artifact), so no run finds predictions of another.

1. Stages (``--stages``), in a process of their own per tree, over the same items:

   - paging: the inference queue's keyset pages (SQL only);
   - decode: fetch + decode + tensor of every item (the dataset, minus paging);
   - batching: the DataLoader's collation into batches (minus decode);
   - forward: the network on those batches (embed + head; with this tree the batch's one
     uint8 -> float conversion), nothing else;
   - scores: probabilities, the stored score columns (what ``predict_batch`` and
     ``score_columns`` add to the forward pass);
   - write: ``PredictionWriter`` (embeddings and predictions, as inference writes them,
     including the statistics refresh on close) of the same number of rows;
   - map (pca): ``compute_map(method="pca")`` of the written embeddings.

2. End to end: ``alsql infer --map none`` of all items as a separate process, for this tree
   and ``--baseline-tree`` (the code before the change) on the same database, median of
   ``--repeats`` runs each.

3. Claims (``--claims``): ``alsql infer --claim --map none`` on PostgreSQL with 1 and with 2
   worker processes started together, wall time until all exit, for both trees.

    python benchmarks/infer.py --baseline-tree OLD_CHECKOUT [--items 200000] [--stages] [--claims]
                               [--chunk-items 5000] [--repeats 1]

Prints a table and saves ``benchmarks/reports/infer.json``; the load average is recorded
beside the figures (the machine is shared).
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPORT = Path(__file__).parent / "reports" / "infer.json"
PG_ADMIN = os.environ.get("ALSQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Run with PYTHONPATH set to the tree under test. argv: url, project id, model id, batch size.
STAGES = r"""
import json, sys, time
import numpy as np, torch
from torch.utils.data import DataLoader
from alsql.db import make_engine
from alsql.loaders import pager
from alsql.loaders.datasets import SqlImageDataset
from alsql.loaders.writer import PredictionWriter
from alsql.models.artifacts import load_model
from alsql.models.predict import predict_batch
from alsql.models.strategies.scores import score_columns
from alsql.models.train import dataset_url
try:  # the tree's own inference path: uint8 items, one float conversion per batch
    from alsql.loaders.datasets import as_float, to_uint8_tensor
except ImportError:  # the code before: float items
    as_float, to_uint8_tensor = (lambda x: x), None
url, pid, mid, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
engine = make_engine(url)
out = {"torch_threads": torch.get_num_threads()}
net, meta, _ = load_model(engine, mid)
def ds():
    return SqlImageDataset(dataset_url(engine), pid, view="inference_queue", model_id=mid, shuffle=False,
                           image_size=meta["image_size"], grayscale=meta["grayscale"],
                           **({"transform": to_uint8_tensor} if to_uint8_tensor else {}))
t = time.perf_counter(); n = sum(1 for _ in pager.iter_rows(engine, pid, "inference_queue", after=0, model_id=mid))
out["paging"] = time.perf_counter() - t
t = time.perf_counter(); k = sum(1 for _ in ds()); out["decode"] = time.perf_counter() - t - out["paging"]
t = time.perf_counter(); batches = [x for x, _y, _i in DataLoader(ds(), batch_size=bs)]
out["batching"] = time.perf_counter() - t - out["paging"] - out["decode"]
with torch.no_grad():
    net.eval()
    t = time.perf_counter()
    for x in batches:
        net.head(net.embed(as_float(x)))
    out["forward"] = time.perf_counter() - t
    t = time.perf_counter()
    for x in batches:
        score_columns(predict_batch(net, as_float(x))["probs"])
    out["scores"] = max(0.0, time.perf_counter() - t - out["forward"])
rng = np.random.default_rng(0)
p = rng.dirichlet(np.ones(meta["num_classes"]), size=n).astype(np.float32)
z = rng.normal(size=(n, net.embedding_dim)).astype(np.float32)
ids = np.arange(1, n + 1, dtype=np.int64)
cols = score_columns(p)
t = time.perf_counter()
with PredictionWriter(engine, mid, kind="embeddings", buffer_rows=50_000, flush_seconds=None) as ew, \
        PredictionWriter(engine, mid, kind="predictions", buffer_rows=50_000, flush_seconds=None) as pw:
    for s in range(0, n, bs):
        e = slice(s, s + bs)
        ew.write(item_ids=ids[e], vector=z[e])
        pw.write(item_ids=ids[e], class_id=cols["class_id"][e], confidence=cols["confidence"][e],
                 margin=cols["margin"][e], entropy=cols["entropy"][e], probs=p[e])
out["write"] = time.perf_counter() - t
from alsql.models.maps import compute_map
t = time.perf_counter(); compute_map(engine, mid, "pca"); out["map (pca)"] = time.perf_counter() - t
out["items"] = n
print(json.dumps(out))
"""


def make_images(folder: Path, n: int, distinct: int, size: int) -> list[str]:
    """``distinct`` PNG files and ``n`` hard links to them (one name per item); their uris."""
    from PIL import Image

    from alsql.stores import path_to_uri

    src = folder / "src"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(distinct):
        base = rng.integers(0, 255, size=(1, 1, 3))
        noise = rng.integers(0, 64, size=(size, size, 3))
        Image.fromarray(((base + noise) % 256).astype(np.uint8)).save(src / f"{k}.png")
    items = folder / "items"
    items.mkdir()
    uris = []
    for i in range(n):
        p = items / f"{i:07d}.png"
        os.link(src / f"{i % distinct}.png", p)
        uris.append(path_to_uri(p))
    return uris


def fill(url: str, uris: list[str], size: int, artifacts: Path) -> tuple[int, object]:
    """Items, a project and a model's artifact; (project id, function making a new model version)."""
    from sqlalchemy import insert

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.models.artifacts import artifact_uri, save_object
    from alsql.models.networks import build_network
    from alsql.schema import items, model_versions

    upgrade(url)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", [f"c{i}" for i in range(10)]).project_id
        for s in range(0, len(uris), 50_000):
            conn.execute(insert(items), [{"uri": u, "status": "ok", "media_type": "image/png", "width": size,
                                          "height": size} for u in uris[s:s + 50_000]])
        conn.exec_driver_sql("ANALYZE")
    import torch

    torch.manual_seed(0)
    net = build_network("cnn", 10, 3)
    uri = artifact_uri(str(artifacts), "bench.pt")
    meta = {"arch": "cnn", "num_classes": 10, "in_channels": 3, "image_size": size, "grayscale": False,
            "classes": [f"c{i}" for i in range(10)]}
    save_object(uri, {"state_dict": net.state_dict(), "meta": meta})

    def new_model() -> int:
        with write_transaction(engine) as conn:
            return conn.execute(insert(model_versions).values(
                project_id=pid, architecture="cnn", artifact_uri=uri, status="ready",
                params={"image_size": size, "in_channels": 3, "grayscale": False, "num_classes": 10})
                .returning(model_versions.c.model_id)).scalar_one()

    return pid, new_model


def alsql(tree: Path, url: str, *args: str, workers: int = 1) -> dict:
    """``alsql --db url ARGS`` from ``tree`` in ``workers`` processes started together; wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", "from alsql.cli import main; main()", "--db", url, *args]
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(workers)]
    outs = [p.communicate()[0] for p in procs]
    dt = time.perf_counter() - t
    bad = [o[-600:] for p, o in zip(procs, outs) if p.returncode]
    if bad:
        raise SystemExit(f"alsql {' '.join(args)} ({tree}) failed:\n{bad[0]}")
    return {"seconds": round(dt, 2), "output": [o.strip().splitlines()[-1][:200] for o in outs if o.strip()]}


def scored(url: str, model_id: int) -> int:
    from sqlalchemy import func, select

    from alsql.db import make_engine
    from alsql.schema import predictions

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(predictions)
                                    .where(predictions.c.model_id == model_id)).scalar_one())
    finally:
        engine.dispose()


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--distinct", type=int, default=2000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--baseline-tree", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--stages", action="store_true", help="the per-stage breakdown (both trees)")
    ap.add_argument("--claims", action="store_true", help="infer --claim with 1 and 2 workers on PostgreSQL")
    ap.add_argument("--chunk-items", type=int, default=5000, help="items per claimed chunk")
    ap.add_argument("--no-end-to-end", action="store_true")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    trees = {"this": ROOT, "baseline": args.baseline_tree.resolve()}
    commits = {k: subprocess.run(["git", "-C", str(c), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip() or "(not a git checkout)" for k, c in trees.items()}
    report = {"items": args.items, "image": f"{args.size}x{args.size} RGB PNG", "arch": "cnn",
              "chunk_items": args.chunk_items,
              "batch_size": args.batch_size, "cpus": os.cpu_count(), "commits": commits, "repeats": args.repeats,
              "load_average_1m_at_start": load()}
    tmp = Path(tempfile.mkdtemp(prefix="alsql-infer-"))
    try:
        t = time.perf_counter()
        uris = make_images(tmp / "images", args.items, args.distinct, args.size)
        url = f"sqlite:///{tmp / 'bench.db'}"
        pid, new_model = fill(url, uris, args.size, tmp / "artifacts")
        print(f"{args.items:,} items in {time.perf_counter() - t:.0f} s", flush=True)
        if args.stages:
            report["stages"] = {}
            for name, tree in trees.items():
                mid = new_model()
                r = subprocess.run([sys.executable, "-c", STAGES, url, str(pid), str(mid), str(args.batch_size)],
                                   env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, capture_output=True,
                                   text=True)
                if r.returncode:
                    raise SystemExit(r.stderr[-2000:])
                report["stages"][name] = {k: (round(v, 2) if isinstance(v, float) else v)
                                          for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items()}
                report["stages"][name]["load_average_1m"] = load()
                print(name, report["stages"][name], flush=True)
        if not args.no_end_to_end:
            report["end_to_end_sqlite"] = {}
            for name, tree in trees.items():
                runs = []
                for _ in range(args.repeats):
                    mid = new_model()
                    r = alsql(tree, url, "infer", "--project", "bench", "--model", str(mid), "--map", "none",
                              "--batch-size", str(args.batch_size))
                    assert scored(url, mid) == args.items, (name, mid)
                    runs.append(r["seconds"])
                report["end_to_end_sqlite"][name] = {"seconds": statistics.median(runs), "runs": runs,
                                                     "items_per_s": round(args.items / statistics.median(runs)),
                                                     "load_average_1m": load()}
                print(name, "end to end", report["end_to_end_sqlite"][name], flush=True)
        if args.claims:
            report["claims_postgresql"] = claims(args, trees, uris)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_average_1m_at_end"] = load()
    print_table(report)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")


def claims(args, trees: dict, uris: list[str]) -> dict:
    from sqlalchemy import create_engine, text

    from alsql.db import normalize_url

    name = f"alsql_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    out: dict = {}
    try:
        url = normalize_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        with tempfile.TemporaryDirectory() as art:
            _pid, new_model = fill(url, uris, args.size, Path(art))
            for tree_name, tree in trees.items():
                for workers in (1, 2):
                    runs = []
                    for _ in range(args.repeats):
                        mid = new_model()
                        r = alsql(tree, url, "infer", "--project", "bench", "--model", str(mid), "--claim",
                                  "--chunk-items", str(args.chunk_items), "--map", "none", "--batch-size",
                                  str(args.batch_size), workers=workers)
                        assert scored(url, mid) == args.items, (tree_name, workers, mid)
                        runs.append(r["seconds"])
                    out[f"{tree_name}, {workers} worker{'s' if workers > 1 else ''}"] = {
                        "seconds": statistics.median(runs), "runs": runs, "load_average_1m": load()}
                    print(tree_name, workers, out, flush=True)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return out


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if "stages" in report:
        t = Table(title=f"alsql infer stages, {report['items']:,} items ({report['image']}), seconds")
        t.add_column("stage")
        names = list(report["stages"])
        for n in names:
            t.add_column(n, justify="right")
        for k in ("paging", "decode", "batching", "forward", "scores", "write", "map (pca)", "torch_threads"):
            t.add_row(k, *(str(report["stages"][n].get(k, "-")) for n in names))
        con.print(t)
    if "end_to_end_sqlite" in report:
        t = Table(title="alsql infer --map none, SQLite (whole process)")
        for c in ("code", "seconds", "items/s", "load avg"):
            t.add_column(c, justify="right")
        for n, r in report["end_to_end_sqlite"].items():
            t.add_row(n, f"{r['seconds']:.1f}", f"{r['items_per_s']:,}", str(r["load_average_1m"]))
        con.print(t)
    if "claims_postgresql" in report:
        t = Table(title="alsql infer --claim --map none, PostgreSQL: wall time until every worker exits")
        for c in ("code, workers", "seconds", "load avg"):
            t.add_column(c, justify="right")
        for n, r in report["claims_postgresql"].items():
            t.add_row(n, f"{r['seconds']:.1f}", str(r["load_average_1m"]))
        con.print(t)


if __name__ == "__main__":
    main()
