"""Map benchmark: t-SNE vs PCA quality, time and peak memory of ``compute_map``, the map endpoint.

(a) Quality, t-SNE (the product's map: openTSNE fitted on a sample, the rest transformed)
    vs PCA (the fallback), on the digits demo's embeddings (a model trained on 300 oracle
    labels, every item inferred) and on the synthetic set: trustworthiness (scikit-learn,
    k=10) and the share of each point's 10 nearest 2-D neighbours with the same class,
    beside that share in the full embedding space. Goal: t-SNE's 2-D share >= 0.9 x the
    full-space share, and above PCA's. Synthetic figures use a seeded subsample.
(b) Time and peak RSS of ``compute_map`` in a child process (``n_jobs=2``,
    ``OMP_NUM_THREADS=2``) on N synthetic embeddings stored in SQLite (a mixture of 10
    Gaussians in 64-D, float16 vectors): PCA (the baseline) then t-SNE, same database.
    Goal: 1,000,000 under 10 minutes and under 2 GB.
(c) The map endpoint (``GET /api/projects/{id}/map.bin``) at N points on SQLite: bytes per
    point (goal <= 12) and server time (goal median < 1 s), timed around the handler: cold
    (the process cache emptied before each request: the static part is read from the file
    the map step wrote beside the model's artifact), warm (cached; labels and open rounds
    are read each time) and, as the baseline, cold with no file (built from SQL, as every
    first request was before the file), medians, same run and database.
    ``--endpoint-only`` builds the sets, maps them with PCA and runs only (c), merging the
    endpoint sections into the existing report.

    python benchmarks/map.py [--sizes 100000,1000000] [--skip-digits] [--quick] [--endpoint-only]
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

import numpy as np

REPORT = Path(__file__).parent / "reports" / "map.json"
CHILD = """
import json, resource, sys, time
from alsql.db import make_engine
from alsql.models.maps import compute_map
t = time.perf_counter()
rep = compute_map(make_engine(sys.argv[1]), int(sys.argv[2]), sys.argv[3], n_jobs=2, refit=True)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]  # this process's own peak (ru_maxrss
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # keeps the parent's)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak,
                  "fitted": rep.fitted, "placed": rep.placed, "method": rep.method}))
"""


def class_share(x: np.ndarray, cls: np.ndarray, k: int = 10) -> float:
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    return float(np.mean(cls[idx] == cls[:, None]))


def quality(vec: np.ndarray, cls: np.ndarray, maps: dict[str, np.ndarray]) -> dict:
    from sklearn.manifold import trustworthiness

    out = {"points": len(vec), "full_space_share": round(class_share(vec, cls), 4)}
    for name, xy in maps.items():
        out[name] = {"trustworthiness": round(float(trustworthiness(vec, xy, n_neighbors=10)), 4),
                     "share_2d": round(class_share(xy, cls), 4)}
        out[name]["share_vs_full"] = round(out[name]["share_2d"] / out["full_space_share"], 4)
    out["goal_met"] = bool(out["tsne"]["share_vs_full"] >= 0.9 and out["tsne"]["share_2d"] > out["pca"]["share_2d"])
    return out


def read_xy(engine, model_id: int, ids: np.ndarray) -> np.ndarray:
    from sqlalchemy import select

    from alsql.schema import embeddings

    got = {}
    with engine.connect() as conn:
        for s in range(0, len(ids), 500):
            part = [int(i) for i in ids[s:s + 500]]
            got.update({r[0]: (r[1], r[2]) for r in conn.execute(
                select(embeddings.c.item_id, embeddings.c.x, embeddings.c.y)
                .where(embeddings.c.model_id == model_id, embeddings.c.item_id.in_(part)))})
    return np.array([got[int(i)] for i in ids], dtype=float)


def digits(tmp: Path) -> dict:
    """The demo's pipeline on digits: 300 oracle labels, train, infer (t-SNE map), then the PCA map."""
    from sqlalchemy import select

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.migrations import ready_engine
    from alsql.models.fit import TrainConfig
    from alsql.models.infer import infer_project
    from alsql.models.maps import compute_map
    from alsql.models.select import create_round
    from alsql.models.train import train_project
    from alsql.pipelines.demo import DIGIT_CLASSES, write_digits
    from alsql.pipelines.loop import answer_round, load_oracle
    from alsql.schema import embeddings

    url = f"sqlite:///{tmp / 'digits.db'}"
    ready_engine(url).dispose()
    engine = make_engine(url)
    oracle_csv = write_digits(tmp / "digits")
    ingest(engine, str(tmp / "digits"))
    with write_transaction(engine) as conn:
        proj = create_project(conn, "digits", DIGIT_CLASSES)
    oracle = load_oracle(engine, proj, oracle_csv)
    answer_round(engine, proj, create_round(engine, proj.project_id, "random", 300, seed=0), oracle)
    cfg = TrainConfig(epochs=10, min_steps=100, batch_size=32, patience=4, image_size=8, seed=0, device="cpu")
    mid = train_project(engine, proj.project_id, cfg, grayscale=True, artifacts=str(tmp / "art"))
    t = time.perf_counter()
    rep = infer_project(engine, proj.project_id, mid, device="cpu", map_method="tsne")
    infer_s = time.perf_counter() - t
    with engine.connect() as conn:
        rows = conn.execute(select(embeddings.c.item_id, embeddings.c.vector).where(embeddings.c.model_id == mid)
                            .order_by(embeddings.c.item_id)).all()
    ids = np.array([r[0] for r in rows])
    vec = np.stack([np.frombuffer(r[1], "<f2").astype(np.float32) for r in rows])
    cls = np.array([oracle[int(i)] for i in ids])
    tsne = read_xy(engine, mid, ids)
    compute_map(engine, mid, "pca", refit=True)
    pca = read_xy(engine, mid, ids)
    engine.dispose()
    return {"items": len(ids), "infer_and_map_seconds": round(infer_s, 1), "map_seconds": round(rep.map.seconds, 1),
            **quality(vec, cls, {"tsne": tsne, "pca": pca})}


def mixture(n: int, d: int = 64, k: int = 10, seed: int = 0, spread: float = 0.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (k, d))
    cls = rng.integers(0, k, n)
    return (centres[cls] + rng.normal(0, 1, (n, d))).astype(np.float32), cls


def build(path: Path, n: int, vec: np.ndarray, cls: np.ndarray) -> tuple[str, int, int, np.ndarray]:
    """A SQLite database with n items, one model's predictions and embeddings (no x, y); a few labels."""
    from sqlalchemy import insert

    from alsql.annotate import insert_annotations
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.stores import path_to_uri
    from alsql.loaders.writer import PredictionWriter
    from alsql.migrations import ready_engine
    from alsql.schema import items, model_versions

    url = f"sqlite:///{path}"
    ready_engine(url).dispose()
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", [f"c{i}" for i in range(10)]).project_id
        mid = conn.execute(insert(model_versions).values(project_id=pid, architecture="smallcnn", label_count=0,
                                                         metrics={}, status="ready",
                                                         artifact_uri=path_to_uri(path.with_suffix(".pt")))
                           .returning(model_versions.c.model_id)).scalar_one()
        for s in range(0, n, 100_000):
            rows = [{"uri": f"file:///bench/{i:08d}.png", "sha256": f"{i:064x}", "media_type": "image/png",
                     "width": 32, "height": 32, "status": "ok", "entity": None} for i in range(s, min(n, s + 100_000))]
            conn.execute(insert(items), rows)
    ids = np.arange(1, n + 1)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), size=n).astype(np.float32)
    with PredictionWriter(engine, mid, "predictions") as pw, PredictionWriter(engine, mid, "embeddings") as ew:
        for s in range(0, n, 50_000):
            sl = slice(s, s + 50_000)
            p = probs[sl]
            top = np.sort(p, axis=1)
            ew.write(item_ids=ids[sl], vector=vec[sl])
            pw.write(item_ids=ids[sl], class_id=p.argmax(1), confidence=top[:, -1], margin=top[:, -1] - top[:, -2],
                     entropy=-(p * np.log(p)).sum(1), probs=p)
    with write_transaction(engine) as conn:
        labeled = ids[:: max(1, n // 10_000)]
        insert_annotations(conn, [{"project_id": pid, "item_id": int(i), "class_id": int(cls[i - 1]),
                                   "annotator": "bench", "source": "import"} for i in labeled])
    engine.dispose()
    return url, pid, mid, ids


def run_child(url: str, mid: int, method: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(mid), method], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def endpoint(url: str, pid: int, repeats: int = 5) -> dict:
    """Server time of ``map.bin``: cold (empty process cache: reads the file the map step wrote),
    warm (cached), and the SQL build (empty cache, no file: what every cold request did before)."""
    from fastapi.testclient import TestClient

    from alsql.db import write_transaction
    from alsql.web import create_app, mapdata
    from alsql.web.auth import add_user

    app = create_app(url, "bench-secret")
    with write_transaction(app.state.engine) as conn:
        add_user(conn, "bench", "admin", "bench-password-123", "tok-bench-0123456789")
    auth = {"Authorization": "Bearer tok-bench-0123456789"}
    times: dict[str, list[float]] = {"cold": [], "warm": [], "sql_build": []}
    bodies = {}
    load_static = mapdata.load_static
    with TestClient(app) as client:
        for kind in ("cold", "warm", "sql_build", "cold"):
            for k in range(repeats if kind != "sql_build" else max(1, repeats // 2 + 1)):
                if kind != "warm":
                    mapdata._STATIC.clear()
                mapdata.load_static = (lambda *a, **kw: None) if kind == "sql_build" else load_static
                try:
                    t = time.perf_counter()
                    r = client.get(f"/api/projects/{pid}/map.bin", headers=auth)
                    times[kind].append(time.perf_counter() - t)
                finally:
                    mapdata.load_static = load_static
                assert r.status_code == 200, r.text
                bodies[kind] = r.content
    mapdata._STATIC.clear()
    size = len(bodies["cold"])
    n = int(r.headers["X-Map-Points"])
    app.state.engine.dispose()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"points": n, "bytes": size, "bytes_per_point": round((size - 48) / n, 3),
            "cold_median_seconds": round(med["cold"], 3), "cold_runs": len(times["cold"]),
            "warm_median_seconds": round(med["warm"], 3), "warm_runs": len(times["warm"]),
            "sql_build_cold_median_seconds": round(med["sql_build"], 3), "sql_build_runs": len(times["sql_build"]),
            "same_bytes_from_file_and_sql": bodies["cold"] == bodies["sql_build"],
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "goal_met": bool((size - 48) / n <= 12 and med["cold"] < 1.0 and med["warm"] < 1.0)}


def synthetic(n: int, tmp: Path, sub: int) -> dict:
    vec, cls = mixture(n)
    t = time.perf_counter()
    url, pid, mid, ids = build(tmp / f"synthetic-{n}.db", n, vec, cls)
    out = {"items": n, "build_seconds": round(time.perf_counter() - t, 1)}
    from alsql.db import make_engine

    engine = make_engine(url)
    pick = np.sort(np.random.default_rng(7).choice(ids, size=min(sub, n), replace=False))
    out["pca"] = run_child(url, mid, "pca")
    pca = read_xy(engine, mid, pick)
    out["tsne"] = run_child(url, mid, "tsne")
    tsne = read_xy(engine, mid, pick)
    engine.dispose()
    out["quality"] = quality(vec[pick - 1], cls[pick - 1], {"tsne": tsne, "pca": pca})
    out["tsne"]["goal_met"] = bool(out["tsne"]["seconds"] < 600 and out["tsne"]["peak_rss_mb"] < 2048)
    out["endpoint"] = endpoint(url, pid)
    return out


def endpoint_only(sizes: list[int], report_path: Path) -> None:
    """Build each synthetic set, map it with PCA (the endpoint does not care which method placed
    the points), time the endpoint, and merge the figures into the existing report."""
    from alsql.db import make_engine
    from alsql.models.maps import compute_map

    report = json.loads(report_path.read_text()) if report_path.exists() else {"synthetic": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            vec, cls = mixture(n)
            url, pid, mid, _ids = build(Path(tmp) / f"synthetic-{n}.db", n, vec, cls)
            engine = make_engine(url)
            t = time.perf_counter()
            compute_map(engine, mid, "pca", n_jobs=2, refit=True)
            engine.dispose()
            e = endpoint(url, pid) | {"map_method": "pca", "map_seconds_with_file": round(time.perf_counter() - t, 1),
                                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      "machine": f"{os.cpu_count()} cores, shared with other jobs"}
            print(f"synthetic {n:,} endpoint: {e['bytes_per_point']} bytes/point, cold median {e['cold_median_seconds']} s "
                  f"(file), warm median {e['warm_median_seconds']} s, SQL build (before) median "
                  f"{e['sql_build_cold_median_seconds']} s; load average {e['load_average']}")
            entry = next((s for s in report.setdefault("synthetic", []) if s.get("items") == n), None)
            if entry is None:
                report["synthetic"].append(entry := {"items": n})
            entry["endpoint"] = e
            report_path.parent.mkdir(parents=True, exist_ok=True)
            report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {report_path} (endpoint sections only)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="synthetic set sizes, comma-separated")
    ap.add_argument("--subsample", type=int, default=5000, help="points the synthetic quality figures use")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20,000 items only")
    ap.add_argument("--report", type=Path, default=REPORT)
    ap.add_argument("--endpoint-only", action="store_true",
                    help="only (c): build, PCA-map and time the endpoint; merge into the existing report")
    args = ap.parse_args()
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    if args.endpoint_only:
        endpoint_only(sizes, args.report)
        return
    report: dict = {"machine": f"{os.cpu_count()} cores, shared with other jobs", "sizes": sizes,
                    "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_digits:
            report["digits"] = d = digits(Path(tmp))
            print(f"digits ({d['items']} items): full-space share {d['full_space_share']}")
            for m in ("tsne", "pca"):
                print(f"  {m:5s} trustworthiness {d[m]['trustworthiness']:.3f}  2-D share {d[m]['share_2d']:.3f} "
                      f"({d[m]['share_vs_full']:.2f} x full)")
        report["synthetic"] = []
        for n in sizes:
            s = synthetic(n, Path(tmp), args.subsample)
            s["load_average_after"] = os.getloadavg()
            report["synthetic"].append(s)
            q, e = s["quality"], s["endpoint"]
            print(f"synthetic {n:,}: build {s['build_seconds']} s")
            for m in ("pca", "tsne"):
                print(f"  {m:5s} map {s[m]['seconds']:7.1f} s  peak RSS {s[m]['peak_rss_mb']:6.0f} MB  "
                      f"trustworthiness {q[m]['trustworthiness']:.3f}  2-D share {q[m]['share_2d']:.3f} "
                      f"({q[m]['share_vs_full']:.2f} x full {q['full_space_share']:.3f})")
            print(f"  endpoint: {e['bytes_per_point']} bytes/point, cold median {e['cold_median_seconds']} s, "
                  f"warm median {e['warm_median_seconds']} s, SQL build median {e['sql_build_cold_median_seconds']} s")
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(json.dumps(report, indent=2) + "\n")
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
