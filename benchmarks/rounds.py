"""Rounds benchmark: one active-learning round on stored embeddings at millions of items, beside
the full path (train the network, score every item from its media) at a smaller size.

A head round (issue 26) is: train a head on the project's 2,000 labels from the encoder's stored
vectors (``alsql.models.heads.train_head``), score every item from stored vectors
(``infer_head``: no media read), select a margin round of budget 1,000
(``alsql.models.select.create_round``), with the predictions written by the writer path.

Databases, per backend, item count N and dimension D (``--backends``, ``--sizes``, ``--dims``):

- N ok image items (generated in SQL; their media are never read by a head round), one
  project of ``--classes`` classes, an encoder model version (status ``encoder``,
  ``params.encoder`` as an ``hf:`` encoder records it: dim D, dtype float16) and its N
  float16 vectors in ``embeddings``, written by ``PredictionWriter`` (PostgreSQL binary COPY,
  SQLite executemany in transactions of ``chunk`` rows), generated in chunks: item i's class
  is a fixed hash of i, its vector that class's Gaussian mean plus unit noise (a signal a
  linear head learns), so memory stays flat while filling;
- ``--labels`` annotations (every (N / labels)-th item, its true class).

SQLite databases are kept in ``--workdir`` (default: a temporary folder removed at the end)
as ``rounds-N-D.db`` and reused by later runs with the same workdir; PostgreSQL databases are
named ``alsql_bench_rounds_N_D``, created on the server of ``ALSQL_TEST_POSTGRES_URL`` and
dropped when measured unless ``--keep-pg`` (then a later run reuses them). A database is
filled under a temporary name and renamed when complete, so an interrupted fill is never reused.

Each round runs in a child process (``python benchmarks/rounds.py --child ...``): its wall time
from the start of training to the round written (its import of torch and alsql is outside),
each stage's seconds, and the child's peak RSS (``ru_maxrss`` from ``os.wait4``: the whole
process, imports included). ``--repeats`` rounds per database (median reported); after each,
its head model, predictions and round are deleted again (not timed), so every repeat starts
from the same database.

Full path (``--full-items``, default 50,000, on each backend): N small PNG images
(``--full-distinct`` distinct 32x32 files per class, hard-linked under one name per item, as
``benchmarks/infer.py`` does; the project's image size 32, the cheapest input for this path),
the same number of labels; in a child process ``alsql.models.train.train_project`` (a CNN from
random weights, the default TrainConfig) and ``alsql.models.infer.infer_project`` (``--map
none``), then the same margin round. Reported as seconds per million items two ways: the
whole time / N x 1M ("naive"), and "at 1M" = training once + inference per item x 1M +
selection (training does not grow with the pool: the fair, smaller figure). The ratio
is full path at 1M / head round at 1M (per backend and dimension).

Goals (issue 26): a round under 60 s at 5M x 128 and under 180 s at 5M x 768, peak RSS under
1.5 GB, ratio at 1M at least 50.

    python benchmarks/rounds.py [--sizes 1000000 5000000] [--dims 128 768]
                                [--backends sqlite postgresql] [--repeats 3] [--workdir DIR]
                                [--keep-pg] [--full-items 50000] [--no-full] [--quick]

``--quick``: 20,000 items, a full path of 5,000 items trained 1 epoch, one repeat (a smoke run, reported in
``rounds_quick.json``). Prints tables and writes ``benchmarks/reports/rounds.json`` (merged with the rows of an earlier
report that this run did not measure, unless ``--fresh-report``).
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPORT = Path(__file__).parent / "reports" / "rounds.json"
PG_ADMIN = os.environ.get("ALSQL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_PREFIX = "alsql_bench_rounds"
SEPARATION = 3.0  # distance of two class means, in units of the noise's standard deviation (about)
GOALS = {128: 60.0, 768: 180.0}  # seconds of a round at 5M items
RSS_GOAL_MB = 1536.0
RATIO_GOAL = 50.0


# ---------------------------------------------------------------- the synthetic data

def class_of(ids: np.ndarray, classes: int) -> np.ndarray:
    """Item ``ids`` -> their true class: a fixed multiplicative hash (no state, any chunk alone)."""
    return ((np.asarray(ids, dtype=np.int64) * 2654435761) % 4294967296) % classes


def class_means(classes: int, dim: int) -> np.ndarray:
    """``(classes, dim)`` float32 means, about ``SEPARATION`` noise deviations apart."""
    return (np.random.default_rng(12345).standard_normal((classes, dim), dtype=np.float32)
            * np.float32(SEPARATION / np.sqrt(2 * dim)))


def vectors(ids: np.ndarray, classes: int, dim: int, means: np.ndarray) -> np.ndarray:
    """Float16 vectors of ``ids`` (a chunk): their class mean plus unit Gaussian noise, seeded by the chunk."""
    rng = np.random.default_rng([7, int(ids[0]), dim])
    out = rng.standard_normal((len(ids), dim), dtype=np.float32)
    out += means[class_of(ids, classes)]
    return out.astype(np.float16)


# ---------------------------------------------------------------- databases

def _admin():
    from sqlalchemy import create_engine

    from alsql.db import normalize_url

    return create_engine(normalize_url(PG_ADMIN), isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    from alsql.db import normalize_url

    return normalize_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def pg_exists(name: str) -> bool:
    from sqlalchemy import text

    admin = _admin()
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
    admin.dispose()
    return found is not None


def pg_drop(name: str) -> None:
    from sqlalchemy import text

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pg_create(name: str) -> None:
    from sqlalchemy import text

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def pg_rename(old: str, new: str) -> None:
    from sqlalchemy import text

    admin = _admin()
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{old}" RENAME TO "{new}"'))
    admin.dispose()


def _series(dialect: str, n: int) -> str:
    if dialect == "postgresql":
        return f"generate_series(1, {int(n)}) AS s(i)"
    return (f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {int(n)}) "
            "SELECT i FROM s) AS t")


def new_project(engine, classes: int, image_size: int | None = None) -> int:
    from alsql.catalog import create_project
    from alsql.db import write_transaction
    from alsql.models.inputs import set_project_image_size

    with write_transaction(engine) as conn:
        pid = create_project(conn, "bench", [f"c{i}" for i in range(classes)]).project_id
        if image_size:
            set_project_image_size(conn, pid, image_size)
    return int(pid)


def add_labels(engine, pid: int, n: int, labels: int, class_for) -> int:
    """``labels`` annotations: every (n / labels)-th item from the first, its class by ``class_for(ids)``."""
    from alsql.annotate import insert_annotations
    from alsql.db import write_transaction

    step = max(1, n // labels)
    ids = np.arange(1, n + 1, step, dtype=np.int64)[:labels]
    cls = class_for(ids)
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": pid, "item_id": int(i), "class_id": int(c), "source": "import",
                                   "annotator": "bench"} for i, c in zip(ids.tolist(), cls.tolist())])
    return len(ids)


def fill_embeddings_db(url: str, n: int, dim: int, classes: int, labels: int, say) -> dict:
    """Items, project, labels, the encoder row and its N vectors in the database at ``url`` (migrated here)."""
    from sqlalchemy import insert

    from alsql.db import make_engine, write_transaction
    from alsql.loaders.writer import PredictionWriter
    from alsql.migrations import upgrade
    from alsql.schema import model_versions

    t0 = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    try:
        pid = new_project(engine, classes)
        with write_transaction(engine) as conn:
            conn.exec_driver_sql(
                "INSERT INTO items (item_id, uri, status, media_type, width, height, ingested_at) "
                f"SELECT i, 'file:///bench/rounds/' || i || '.png', 'ok', 'image/png', 32, 32, "
                f"'2024-01-01 00:00:00' FROM {_series(conn.dialect.name, n)}")
            eid = conn.execute(insert(model_versions).values(
                project_id=pid, architecture=f"bench:gaussian-{dim}", status="encoder",
                params={"kind": "encoder", "encoder": {
                    "spec": f"bench:gaussian-{dim}", "dim": dim, "dtype": "float16", "preprocess": {},
                    "fingerprint": f"gaussian-{classes}-{dim}-{SEPARATION}"}},
            ).returning(model_versions.c.model_id)).scalar_one()
        t_items = time.perf_counter() - t0
        means = class_means(classes, dim)
        chunk = max(10_000, 25_000_000 // dim)
        with PredictionWriter(engine, eid, kind="embeddings", buffer_rows=chunk, flush_seconds=None) as w:
            for s in range(1, n + 1, chunk):
                ids = np.arange(s, min(n, s + chunk - 1) + 1, dtype=np.int64)
                w.write(item_ids=ids, vector=vectors(ids, classes, dim, means))
                if (s - 1) // chunk % 10 == 9:
                    say(f"    {s + len(ids) - 1:,} / {n:,} vectors, {time.perf_counter() - t0:.0f} s")
        t_vec = time.perf_counter() - t0 - t_items
        add_labels(engine, pid, n, labels, lambda ids: class_of(ids, classes))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)" if conn.dialect.name == "postgresql" else "ANALYZE")
    finally:
        engine.dispose()
    return {"fill_seconds": round(time.perf_counter() - t0, 1), "items_seconds": round(t_items, 1),
            "vectors_seconds": round(t_vec, 1)}


def embeddings_db(backend: str, n: int, dim: int, args, say) -> tuple[str, dict, object]:
    """(URL, fill facts, cleanup) of the filled database for (backend, n, dim): reused or filled now."""
    if backend == "sqlite":
        path = args.workdir / f"rounds-{n}-{dim}.db"
        fact = {"reused": path.is_file()}
        if not path.is_file():
            partial = path.with_name(path.name + ".partial")
            for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                p.unlink(missing_ok=True)
            say(f"filling {backend} {n:,} x {dim} ...")
            fact |= fill_embeddings_db(f"sqlite:///{partial}", n, dim, args.classes, args.labels, say)
            partial.rename(path)
        fact["size_gb"] = round(path.stat().st_size / 1e9, 2)
        return f"sqlite:///{path}", fact, (lambda: None)
    name = f"{PG_PREFIX}_{n}_{dim}"
    fact = {"reused": pg_exists(name)}
    if not fact["reused"]:
        partial = f"{name}_partial"
        pg_drop(partial)
        pg_create(partial)
        try:
            say(f"filling {backend} {n:,} x {dim} ...")
            fact |= fill_embeddings_db(_pg_url(partial), n, dim, args.classes, args.labels, say)
        except BaseException:
            pg_drop(partial)
            raise
        pg_rename(partial, name)
    url = _pg_url(name)
    from alsql.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        fact["size_gb"] = round(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() / 1e9, 2)
    engine.dispose()
    return url, fact, (lambda: None if args.keep_pg else pg_drop(name))


def reset_db(url: str) -> None:
    """Back to the filled state: no head models, predictions or rounds (what a measured round, or
    one cut short, wrote), so every repeat starts from the same database. Not timed."""
    from sqlalchemy import delete

    from alsql.db import make_engine, write_transaction
    from alsql.schema import model_versions, predictions, round_items, rounds

    engine = make_engine(url)
    try:
        with write_transaction(engine) as conn:
            conn.execute(delete(round_items))
            conn.execute(delete(rounds))
            conn.execute(delete(predictions))
            conn.execute(delete(model_versions).where(model_versions.c.status != "encoder"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("VACUUM (ANALYZE) predictions")
                conn.exec_driver_sql("VACUUM (ANALYZE) model_versions")
    finally:
        engine.dispose()


def cancel_queries(url: str) -> None:
    """Cancel what a killed child left running on its PostgreSQL database (this run's own database)."""
    from alsql.db import make_engine

    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = "
                                     "current_database() AND pid <> pg_backend_pid()").all()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- one measured child

class ChildFailed(Exception):
    """A measured child exited with an error or ran past its time limit (``timed_out``)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def run_child(spec: dict, env: dict, profile: Path | None = None, timeout: float | None = None) -> dict:
    """Run ``spec`` in a child process: its JSON line, plus the wall, CPU and peak RSS of the whole
    child. ChildFailed when it fails or runs past ``timeout`` seconds (then it is killed, and its
    queries on a PostgreSQL database cancelled); the message ends with its last stage lines."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    if profile is not None:
        cmd += ["--child-profile", str(profile)]
    t = time.perf_counter()
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.perf_counter() - t > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                cancel_queries(spec["url"])
                break
            time.sleep(0.2)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if timed_out:
        raise ChildFailed(f"killed after {wall:.0f} s (limit {timeout:.0f} s); last stage: "
                          f"{(errors.strip().splitlines() or ['(none)'])[-1][:300]}", timed_out=True)
    rc = os.waitstatus_to_exitcode(status)
    if rc:
        raise ChildFailed(f"exit {rc}: {errors[-1500:]}{text[-500:]}")
    result = json.loads(text.strip().splitlines()[-1])
    result.update(process_seconds=round(wall, 2), peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
                  process_cpu_s=round(usage.ru_utime + usage.ru_stime, 2))
    return result


def _stage(msg: str) -> None:
    """A child's progress line on stderr (the parent names the last one when it kills the child)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(spec: dict) -> dict:
    """The measured work, in this (child) process. ``spec['what']``: ``head`` or ``full``."""
    from sqlalchemy import func, select

    import alsql.models.infer  # noqa: F401  (imports outside the timed part)
    import alsql.models.select  # noqa: F401
    import alsql.models.train  # noqa: F401
    from alsql.db import make_engine
    from alsql.models.select import create_round
    from alsql.schema import model_versions, predictions, round_items

    engine = make_engine(spec["url"])
    pid = spec["project_id"]
    out: dict = {}
    if spec["what"] == "head":
        import hashlib

        import alsql.models.heads as heads
        from alsql.models.heads import infer_head, train_head

        # the code measured (helpers may edit the tree while a long run goes on): its blob id, as git names it
        data = Path(heads.__file__).read_bytes()
        out["heads_py_blob"] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()[:10]
    out["rss_after_imports_mb"] = _rss_mb()
    c0, t0 = _cpu_s(), time.perf_counter()
    if spec["what"] == "head":
        mid = train_head(engine, pid, head=spec["head"], encoder_model_id=spec["encoder_model_id"], seed=0,
                         say=lambda *_a, **_k: None)
        out["model_ids"] = [int(mid)]
        c1, t1 = _cpu_s(), time.perf_counter()
        out["rss_after_train_mb"] = _rss_mb()
        _stage(f"trained head {mid} in {t1 - t0:.1f} s; scoring")
        rep = infer_head(engine, pid, mid)
        out["reported_items"] = int(getattr(rep, "items", -1))
    else:
        from alsql.models.fit import TrainConfig
        from alsql.models.infer import infer_project
        from alsql.models.train import train_project

        cfg = TrainConfig(seed=0) if spec.get("epochs") is None else TrainConfig(seed=0, epochs=spec["epochs"],
                                                                                  min_steps=0)
        mid = train_project(engine, pid, cfg, init="random")
        out["model_ids"] = [int(mid)]
        c1, t1 = _cpu_s(), time.perf_counter()
        out["rss_after_train_mb"] = _rss_mb()
        _stage(f"trained model {mid} in {t1 - t0:.1f} s; inferring")
        rep = infer_project(engine, pid, mid, map_method=None)
        out["reported_items"] = int(rep.items)
    c2, t2 = _cpu_s(), time.perf_counter()
    out["rss_after_score_mb"] = _rss_mb()
    _stage(f"scored in {t2 - t1:.1f} s; selecting")
    rid = create_round(engine, pid, "margin", spec["budget"], model_id=mid, seed=0)
    c3, t3 = _cpu_s(), time.perf_counter()
    out["rss_after_select_mb"] = _rss_mb()
    with engine.connect() as conn:
        out["scored"] = int(conn.execute(select(func.count()).select_from(predictions)
                                         .where(predictions.c.model_id == mid)).scalar_one())
        out["selected"] = int(conn.execute(select(func.count()).select_from(round_items)
                                           .where(round_items.c.round_id == rid)).scalar_one())
        metrics = conn.execute(select(model_versions.c.metrics).where(model_versions.c.model_id == mid)).scalar()
    engine.dispose()
    out.update(round_id=int(rid), train_s=round(t1 - t0, 3), score_s=round(t2 - t1, 3), select_s=round(t3 - t2, 3),
               round_s=round(t3 - t0, 3), train_cpu_s=round(c1 - c0, 3), score_cpu_s=round(c2 - c1, 3),
               select_cpu_s=round(c3 - c2, 3), round_cpu_s=round(c3 - c0, 3))
    if isinstance(metrics, dict):
        out["metrics"] = {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "train_accuracy", "evaluated",
                                                  "epochs") if k in metrics}
    return out


# ---------------------------------------------------------------- the full path's data

def full_images(folder: Path, n: int, classes: int, distinct: int, size: int = 32) -> list[str]:
    """``distinct`` PNGs per class (a class colour plus noise) and ``n`` hard links, item i of
    class ``i % classes``; their uris (kept in ``folder`` for later runs)."""
    from PIL import Image

    from alsql.stores import path_to_uri

    done = folder / f"done-{n}-{classes}-{distinct}-{size}"
    items = folder / f"items-{n}"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        src = folder / "src"
        src.mkdir(parents=True)
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, size=(classes, 1, 1, 3))
        for c in range(classes):
            for k in range(distinct):
                noise = rng.integers(0, 96, size=(size, size, 3))
                Image.fromarray(((base[c] + noise) % 256).astype(np.uint8)).save(src / f"{c}-{k}.png")
        items.mkdir()
        for i in range(n):
            os.link(src / f"{i % classes}-{(i // classes) % distinct}.png", items / f"{i:07d}.png")
        done.touch()
    return [path_to_uri(items / f"{i:07d}.png") for i in range(n)]


def fill_full_db(url: str, uris: list[str], classes: int, labels: int) -> int:
    from sqlalchemy import insert

    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.schema import items

    upgrade(url)
    engine = make_engine(url)
    try:
        pid = new_project(engine, classes, image_size=32)
        with write_transaction(engine) as conn:
            for s in range(0, len(uris), 50_000):
                conn.execute(insert(items), [{"item_id": s + k + 1, "uri": u, "status": "ok",
                                              "media_type": "image/png", "width": 32, "height": 32}
                                             for k, u in enumerate(uris[s:s + 50_000])])
        # item i + 1 is image i: class i % classes
        add_labels(engine, pid, len(uris), labels, lambda ids: (ids - 1) % classes)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)" if conn.dialect.name == "postgresql" else "ANALYZE")
    finally:
        engine.dispose()
    return pid


def full_path(backend: str, args, env: dict, say) -> dict:
    n = args.full_items
    say(f"full path, {backend}, {n:,} items ...")
    uris = full_images(args.workdir / "full-images", n, args.classes, args.full_distinct)
    name = None
    if backend == "sqlite":
        path = args.workdir / f"full-{n}.db"
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        name = f"{PG_PREFIX}_full_{n}"
        pg_drop(name)
        pg_create(name)
        url = _pg_url(name)
    try:
        pid = fill_full_db(url, uris, args.classes, args.labels)
        try:
            r = run_child({"what": "full", "url": url, "project_id": pid, "budget": args.budget,
                           "epochs": args.full_epochs}, env, timeout=args.full_timeout)
        except ChildFailed as e:
            say(f"  full path {backend} failed: {e}")
            return {"backend": backend, "items": n, "error": str(e), "timed_out": e.timed_out}
    finally:
        if name is not None:
            pg_drop(name)
        else:
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
    r.update(backend=backend, items=n, epochs=args.full_epochs or "default", load_average_1m=round(os.getloadavg()[0], 2),
             cpu_pressure_avg60=cpu_pressure())
    r["s_per_million_naive"] = round(r["round_s"] / n * 1e6, 1)
    r["s_per_million_at_1m"] = round(r["train_s"] + r["score_s"] / n * 1e6 + r["select_s"], 1)
    say(f"  full path {backend}: train {r['train_s']:.1f} s, infer {r['score_s']:.1f} s, select "
        f"{r['select_s']:.1f} s; {r['s_per_million_at_1m']:,.0f} s per 1M items (at 1M), peak RSS "
        f"{r['peak_rss_mb']:.0f} MB")
    return r


# ---------------------------------------------------------------- the head rounds

def head_rounds(backend: str, n: int, dim: int, args, env: dict, say) -> dict:
    url, fact, cleanup = embeddings_db(backend, n, dim, args, say)
    from alsql.db import make_engine
    from alsql.schema import model_versions, projects
    from sqlalchemy import select

    engine = make_engine(url)
    with engine.connect() as conn:
        pid = int(conn.execute(select(projects.c.project_id).where(projects.c.name == "bench")).scalar_one())
        eid = int(conn.execute(select(model_versions.c.model_id).where(
            model_versions.c.project_id == pid, model_versions.c.status == "encoder")).scalar_one())
    engine.dispose()
    runs, failure = [], None
    try:
        for k in range(args.repeats):
            reset_db(url)
            load = round(os.getloadavg()[0], 2)
            prof = (args.profile / f"{backend}-{n}-{dim}-{k}.prof") if args.profile else None
            try:
                r = run_child({"what": "head", "url": url, "project_id": pid, "encoder_model_id": eid,
                               "head": args.head, "budget": args.budget}, env, prof, timeout=args.round_timeout)
            except ChildFailed as e:
                failure = {"error": str(e), "timed_out": e.timed_out, "repeat": k, "load_average_1m": load}
                say(f"  {backend} {n:,} x {dim}: round {k + 1} failed: {e}")
                break  # a stuck cell is not repeated
            r["load_average_1m"] = load
            r["cpu_pressure_avg60"] = cpu_pressure()
            runs.append(r)
            say(f"  {backend} {n:,} x {dim}: round {r['round_s']:.1f} s (train {r['train_s']:.1f}, score "
                f"{r['score_s']:.1f}, select {r['select_s']:.1f}; CPU {r['round_cpu_s']:.1f} s), peak RSS "
                f"{r['peak_rss_mb']:.0f} MB, {r['scored']:,} scored, {r['selected']:,} selected, load {load}")
        reset_db(url)
    finally:
        cleanup()
    keys = ("round_s", "train_s", "score_s", "select_s", "process_seconds", "round_cpu_s", "train_cpu_s",
            "score_cpu_s", "select_cpu_s")
    med = {k: (round(statistics.median(r[k] for r in runs), 2) if runs else None) for k in keys}
    row = {"backend": backend, "items": n, "dim": dim, **med,
           "peak_rss_mb": max((r["peak_rss_mb"] for r in runs), default=None),
           "s_per_million": round(med["round_s"] / n * 1e6, 2) if runs else None, "fill": fact, "runs": runs}
    if failure is not None:
        row["failure"] = failure
    goal = GOALS.get(dim) if n >= 5_000_000 else None
    row["goal_s"] = goal
    row["meets_goal"] = bool(runs) and failure is None and (goal is None or med["round_s"] < goal) \
        and row["peak_rss_mb"] < RSS_GOAL_MB
    return row


# ---------------------------------------------------------------- report

def ratios(head_rows: list[dict], full_rows: list[dict], at: int) -> list[dict]:
    """Full path at 1M / head round, seconds per million items, per backend and dimension at ``at``
    items (the full path of the same backend, else the first measured)."""
    out = []
    full_ok = [r for r in full_rows if r.get("round_s") is not None]
    full = {r["backend"]: r for r in full_ok}
    for h in head_rows:
        if h["items"] != at or not h.get("s_per_million"):
            continue
        f = full.get(h["backend"]) or (full_ok[0] if full_ok else None)
        if f is None:
            continue
        ratio = f["s_per_million_at_1m"] / h["s_per_million"]
        cpu = None  # the same ratio in CPU seconds (what the contention of a shared machine does not change)
        if h.get("round_cpu_s") and f.get("train_cpu_s") is not None:
            full_cpu = f["train_cpu_s"] + f["score_cpu_s"] / f["items"] * 1e6 + f["select_cpu_s"]
            cpu = round(full_cpu / (h["round_cpu_s"] / h["items"] * 1e6), 1)
        out.append({"backend": h["backend"], "dim": h["dim"], "items": at, "head_s_per_million": h["s_per_million"],
                    "full_backend": f["backend"], "full_s_per_million_at_1m": f["s_per_million_at_1m"],
                    "full_s_per_million_naive": f["s_per_million_naive"], "ratio": round(ratio, 1),
                    "ratio_naive": round(f["s_per_million_naive"] / h["s_per_million"], 1), "ratio_cpu": cpu,
                    "meets_goal": ratio >= RATIO_GOAL})
    return out


def cpu_pressure() -> float | None:
    """Linux PSI: the share (%) of the last 60 s in which some runnable task waited for a CPU."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in line.split()[1:])["avg60"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _loads(runs: list[dict]) -> str:
    loads = [r["load_average_1m"] for r in runs if r.get("load_average_1m") is not None]
    return "-" if not loads else f"{min(loads):.0f}-{max(loads):.0f}" if len(loads) > 1 else f"{loads[0]:.0f}"


def _f(v, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def print_tables(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 160)
    t = Table(title=f"head round (train {report['head']} head on {report['labels']:,} labels, score every item, "
                    f"margin round of {report['budget']:,}): median of each cell's runs, seconds")
    for c in ("backend", "items", "dim", "round", "train", "score", "select", "CPU", "s / 1M", "peak RSS MB",
              "goal", "ok", "runs", "load", "fill s", "db GB"):
        t.add_column(c, justify="right")
    for r in report["head_rounds"]:
        fill = r.get("fill") or {}
        t.add_row(r["backend"], f"{r['items']:,}", str(r["dim"]), _f(r["round_s"]), _f(r["train_s"]),
                  _f(r["score_s"]), _f(r["select_s"]), _f(r.get("round_cpu_s")), _f(r["s_per_million"]),
                  _f(r["peak_rss_mb"], ".0f"), "-" if r["goal_s"] is None else f"< {r['goal_s']:.0f}",
                  "yes" if r["meets_goal"] else "NO",
                  f"{len(r['runs'])}" + (" + timed out" if (r.get("failure") or {}).get("timed_out") else
                                         " + failed" if r.get("failure") else ""),
                  _loads(r["runs"] + ([r["failure"]] if r.get("failure") else [])),
                  "reused" if fill.get("reused") else _f(fill.get("fill_seconds"), ".0f"), _f(fill.get("size_gb")))
    con.print(t)
    if report["full_path"]:
        t = Table(title="full path (train a CNN from the media, infer every item from the media, margin round), "
                        "seconds")
        for c in ("backend", "items", "train", "infer", "select", "total", "CPU", "s / 1M (naive)", "s / 1M (at 1M)",
                  "peak RSS MB", "load"):
            t.add_column(c, justify="right")
        for r in report["full_path"]:
            if r.get("round_s") is None:
                t.add_row(r["backend"], f"{r['items']:,}", "failed: " + r.get("error", "")[:60], *["-"] * 8)
                continue
            t.add_row(r["backend"], f"{r['items']:,}", _f(r["train_s"]), _f(r["score_s"]), _f(r["select_s"]),
                      _f(r["round_s"]), _f(r.get("round_cpu_s")), f"{r['s_per_million_naive']:,.0f}",
                      f"{r['s_per_million_at_1m']:,.0f}", _f(r["peak_rss_mb"], ".0f"), _f(r.get("load_average_1m")))
        con.print(t)
    if report["ratios"]:
        t = Table(title=f"full path / head round, seconds per million items at {report['ratio_at']:,} items "
                        f"(goal >= {RATIO_GOAL:.0f}x)")
        for c in ("backend", "dim", "head s / 1M", "full s / 1M (at 1M)", "ratio", "ratio (naive)", "ratio (CPU s)",
                  "ok"):
            t.add_column(c, justify="right")
        for r in report["ratios"]:
            t.add_row(r["backend"], str(r["dim"]), f"{r['head_s_per_million']:.1f}",
                      f"{r['full_s_per_million_at_1m']:,.0f} ({r['full_backend']})", f"{r['ratio']}x",
                      f"{r['ratio_naive']}x", "-" if r.get("ratio_cpu") is None else f"{r['ratio_cpu']}x",
                      "yes" if r["meets_goal"] else "NO")
        con.print(t)


def merged(report: dict, path: Path) -> dict:
    """``report`` with an earlier report's rows for the cells this run did not measure (head rounds by
    (backend, items, dim); the full path by backend), each marked with the earlier commit."""
    out = dict(report)
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}

    def mark(r: dict) -> dict:
        return r | {"from_earlier_run": r.get("from_earlier_run") or old.get("commit")}

    have = {(r["backend"], r["items"], r["dim"]) for r in report["head_rounds"]}
    out["head_rounds"] = sorted(report["head_rounds"] + [mark(r) for r in old.get("head_rounds", [])
                                                         if (r["backend"], r["items"], r["dim"]) not in have],
                                key=lambda r: (r["backend"], r["items"], r["dim"]))
    have = {r["backend"] for r in report["full_path"]}
    out["full_path"] = report["full_path"] + [mark(r) for r in old.get("full_path", []) if r["backend"] not in have]
    return out


def write_report(report: dict, args) -> dict:
    """Merge (unless --fresh-report or --quick), compute the ratios, write the JSON; the merged report."""
    out = report if args.fresh_report or args.quick else merged(report, args.report)
    sizes = sorted({r["items"] for r in out["head_rounds"]})
    out["ratio_at"] = args.ratio_at or (1_000_000 if 1_000_000 in sizes or not sizes else min(sizes))
    out["ratios"] = ratios(out["head_rounds"], out["full_path"], out["ratio_at"])
    out["load_average_1m_now"] = round(os.getloadavg()[0], 2)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        if "--child-profile" in sys.argv:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            result = prof.runcall(child, spec)
            path = Path(sys.argv[sys.argv.index("--child-profile") + 1])
            prof.dump_stats(path)
            with open(path.with_suffix(".txt"), "w") as fh:
                pstats.Stats(prof, stream=fh).sort_stats("cumulative").print_stats(40)
        else:
            result = child(spec)
        print(json.dumps(result), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 5_000_000],
                    help="items of the head rounds (none: the full path only)")
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 768])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    ap.add_argument("--repeats", type=int, default=3, help="head rounds per database (the median is reported)")
    ap.add_argument("--labels", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--head", default="linear", choices=["linear", "mlp"])
    ap.add_argument("--workdir", type=Path, help="keep the filled SQLite databases and the full path's images here "
                    "(default: a temporary folder, removed at the end)")
    ap.add_argument("--keep-pg", action="store_true", help="keep the filled PostgreSQL databases for later runs")
    ap.add_argument("--full-items", type=int, default=50_000)
    ap.add_argument("--full-distinct", type=int, default=20, help="distinct images per class of the full path")
    ap.add_argument("--full-backends", nargs="+", choices=["sqlite", "postgresql"],
                    help="where the full path runs (default: --backends)")
    ap.add_argument("--full-epochs", type=int, help="the CNN's epochs (default: alsql train's, 30 and at least "
                    "200 steps; --quick: 1)")
    ap.add_argument("--no-full", action="store_true", help="skip the full path (the report keeps an earlier one)")
    ap.add_argument("--ratio-at", type=int, help="items of the head round the ratio uses (default 1M, or the "
                    "smallest size when 1M is not measured)")
    ap.add_argument("--profile", type=Path, help="cProfile each head round into this folder (.prof and .txt)")
    ap.add_argument("--quick", action="store_true", help="20,000 items, a 5,000-item full path, one repeat")
    ap.add_argument("--fresh-report", action="store_true", help="do not keep an earlier report's other cells")
    ap.add_argument("--round-timeout", type=float, default=900, help="seconds before a head round is killed "
                    "(recorded as timed out; the cell is not repeated)")
    ap.add_argument("--full-timeout", type=float, default=3600, help="seconds before the full path is killed")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.full_items, args.repeats = [20_000], 5_000, 1
        args.full_epochs = args.full_epochs or 1
        if args.report == REPORT:
            args.report = REPORT.with_name("rounds_quick.json")
    for n in args.sizes:
        if n < args.labels:
            ap.error(f"--sizes {n}: expected at least --labels ({args.labels}) items")
    if args.full_items < args.labels:
        ap.error(f"--full-items {args.full_items}: expected at least --labels ({args.labels}) items")
    args.full_backends = args.full_backends or args.backends
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    keep_dir = args.workdir is not None
    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="alsql-rounds-"))).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "ALSQL_ARTIFACTS": str(args.workdir / "artifacts")}

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    report = {"commit": commit, "cpus": os.cpu_count(), "head": args.head, "labels": args.labels,
              "budget": args.budget, "classes": args.classes, "repeats": args.repeats, "quick": args.quick,
              "load_average_1m_at_start": round(os.getloadavg()[0], 2),
              "goals": {"round_s_at_5m": {str(k): v for k, v in GOALS.items()}, "peak_rss_mb": RSS_GOAL_MB,
                        "ratio_at_1m": RATIO_GOAL},
              "head_rounds": [], "full_path": []}
    report["note"] = ("a shared 2-core machine (other jobs ran beside; load averages recorded per round); "
                      "peak RSS is the whole child process (imports included); 'round' runs from the start of "
                      "training to the round written, CPU is that part's user + system seconds; full path s / 1M "
                      "'at 1M' = training once + inference per item x 1M + selection, 'naive' = whole time / items "
                      "x 1M; a round past --round-timeout is killed and recorded as timed out; heads_py_blob (per run): the git "
                      "blob id of the alsql/models/heads.py the round imported (`git log --find-object` names its commit); "
                      "cpu_pressure_avg60: Linux PSI, the share of the minute before a round ended in which a task "
                      "waited for a CPU (near 100 here: wall seconds measure the machine's contention, CPU seconds "
                      "the round's own work)")
    try:
        for backend in args.backends:
            for n in args.sizes:
                for dim in args.dims:
                    report["head_rounds"].append(head_rounds(backend, n, dim, args, env, say))
                    write_report(report, args)
        if not args.no_full:
            for backend in args.full_backends:
                report["full_path"].append(full_path(backend, args, env, say))
                write_report(report, args)
    finally:
        if not keep_dir:
            shutil.rmtree(args.workdir, ignore_errors=True)
    print_tables(write_report(report, args))
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
