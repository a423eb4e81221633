"""The Dagster code location: the graph materialized on a tiny project, checks, and `dagster dev`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import need_module  # noqa: E402

need_module("dagster")
need_module("dagster_dbt")

from dagster import AssetKey, AssetSelection, AssetSpec, DagsterInstance, materialize  # noqa: E402
from sqlalchemy import func, inspect, insert, select, text  # noqa: E402

from alsql.db import make_engine, write_transaction  # noqa: E402
from alsql.schema import items, model_versions, round_items, rounds, runs  # noqa: E402
from alsql.schema.pipelines import work_chunks  # noqa: E402
from orchestration_support import resources, settings_for  # noqa: E402
from pipeline_helpers import label, make_project, prediction_counts, write_pngs  # noqa: E402


def _defs(url, tmp_path, **kw):
    from alsql.orchestration import build_definitions

    return build_definitions(settings_for(url, tmp_path, **kw))


def test_code_location_has_the_pipeline_assets_marts_checks_and_sensors(sqlite_url, tmp_path):
    defs = _defs(sqlite_url, tmp_path, sources={"cams": {"uri": str(tmp_path)}, "lab": {"uri": str(tmp_path)}})
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"items/cams", "items/lab", "model", "predictions", "round", "label_progress", "item_index",
            "alsql/items", "alsql/predictions"} <= keys
    parents = lambda key: {p.to_user_string() for p in graph.get(AssetKey.from_user_string(key)).parent_keys}  # noqa: E731
    assert parents("model") == {"items/cams", "items/lab"}
    assert parents("predictions") == {"model"} and parents("round") == {"predictions"}
    assert parents("alsql/items") == {"items/cams", "items/lab"} and parents("alsql/rounds") == {"round"}
    assert parents("stg_predictions") == {"alsql/predictions", "predictions"}  # lineage through the dbt source
    assert parents("stg_items") == {"alsql/items", "items/cams", "items/lab"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {("alsql/items", "expectations_items"), ("alsql/annotations", "expectations_annotations"),
            ("alsql/predictions", "expectations_predictions")} <= checks
    assert any(k == "item_index" and "unique" in n for k, n in checks)  # dbt tests are asset checks
    assert sorted(s.name for s in defs.sensors) == ["drift_alert", "label_queue_low", "labels_since_model",
                                                   "new_files_cams", "new_files_lab"]


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/made-later.db", "postgresql://alsql@192.0.2.1:5/none"])
def test_the_manifest_is_parsed_offline_and_reused(url, tmp_path, monkeypatch):
    import tempfile

    from alsql.orchestration.dbt import manifest_path

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    path = manifest_path(url.format(tmp=tmp_path))  # no file yet / no server at that address
    nodes = json.loads(path.read_text())["nodes"]
    assert "model.alsql.item_index" in nodes and "model.alsql.label_progress" in nodes
    assert not (tmp_path / "made-later.db").exists()
    assert path.is_relative_to(tmp_path / "cache")
    stamp = path.stat().st_mtime_ns
    assert manifest_path(url.format(tmp=tmp_path)) == path and path.stat().st_mtime_ns == stamp


def test_a_broken_row_fails_the_expectations_check(sqlite_url, tmp_path):
    from alsql.orchestration.checks import check_name

    defs = _defs(sqlite_url, tmp_path)
    specs = [a for a in defs.assets if isinstance(a, AssetSpec)]
    checks = list(defs.asset_checks)
    engine = make_engine(sqlite_url)
    with write_transaction(engine) as conn:
        conn.execute(insert(items), [{"uri": f"file:///x/{i}.png", "sha256": f"{i:064d}", "media_type": "image/png",
                                      "width": 8, "height": 8, "status": "ok"} for i in range(3)])

    def evaluate():
        sel = AssetSelection.checks(*[c for c in checks if check_name("items") in {k.name for k in c.check_keys}])
        res = materialize([*specs, *checks], selection=sel, resources=resources(sqlite_url),
                          instance=DagsterInstance.ephemeral(), raise_on_error=False)
        (ev,) = res.get_asset_check_evaluations()
        return ev

    assert evaluate().passed
    with write_transaction(engine) as conn:  # a zero-width image: the suite expects width > 0
        conn.execute(insert(items).values(uri="file:///x/broken.png", sha256="f" * 64, media_type="image/png",
                                          width=0, height=8, status="ok"))
    ev = evaluate()
    assert not ev.passed
    failing = ev.metadata["failing"].data
    assert any("width" in k and v["failed"] == 1 and v["of"] == 4 for k, v in failing.items()), failing
    with engine.connect() as conn:
        steps = conn.execute(select(runs.c.step, runs.c.trigger).order_by(runs.c.run_id)).all()
    engine.dispose()
    assert [s for s, _ in steps] == ["validate", "validate"] and all(t.startswith("dagster run ") for _, t in steps)


def _mart_rows(engine, name: str) -> int:
    schema = "marts" if engine.dialect.name == "postgresql" else None
    assert name in inspect(engine).get_table_names(schema=schema)
    table = f"marts.{name}" if schema else name
    with engine.connect() as conn:
        return int(conn.execute(text(f"select count(*) from {table}")).scalar_one())


@pytest.mark.slow
def test_materializing_the_graph_makes_model_predictions_round_and_marts(db_url, tmp_path):
    engine = make_engine(db_url)
    folder = tmp_path / "png"
    proj, oracle = make_project(engine, folder, 60)
    label(engine, proj.project_id, oracle, sorted(oracle)[:30])
    write_pngs(folder, 20, seed=1, start=60)  # files the items asset ingests
    defs = _defs(db_url, tmp_path, sources={"bands": {"uri": str(folder)}})
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    # The marts over alsql's own tables and everything upstream of them, from ingest on.
    wanted = AssetSelection.assets("label_progress", "item_index", "prediction_drift", "model_performance").upstream()
    keys = [k for k in wanted.resolve(graph) if graph.get(k).is_executable]
    assert {AssetKey(["items", "bands"]), AssetKey("model"), AssetKey("predictions"), AssetKey("round")} <= set(keys)
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, asset_selection=keys)
    assert result.success
    made = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {AssetKey(["items", "bands"]), AssetKey("model"), AssetKey("predictions"), AssetKey("round"),
            AssetKey("label_progress"), AssetKey("item_index"), AssetKey("prediction_drift")} <= made
    dbt_checks = result.get_asset_check_evaluations()
    assert dbt_checks and all(c.passed for c in dbt_checks), [c.check_name for c in dbt_checks if not c.passed]

    with engine.connect() as conn:
        n_ok = conn.execute(select(func.count()).select_from(items).where(items.c.status == "ok")).scalar_one()
        (model_id,) = conn.execute(select(model_versions.c.model_id)).scalars().all()
        rnd = conn.execute(select(rounds.c.round_id, rounds.c.model_id)).one()
        picked = conn.execute(select(func.count()).select_from(round_items)
                              .where(round_items.c.round_id == rnd.round_id)).scalar_one()
        chunks = dict(conn.execute(select(work_chunks.c.status, func.count()).group_by(work_chunks.c.status)).all())
        recorded = conn.execute(select(runs.c.step, runs.c.status, runs.c.trigger, runs.c.params)
                                .order_by(runs.c.run_id)).all()
    assert n_ok == 80
    assert prediction_counts(engine, model_id) == (80, 80)  # every ok item, the 20 new ones too
    assert rnd.model_id == model_id and picked == 20
    assert set(chunks) == {"done"} and chunks["done"] == 2  # 80 keys in chunks of 40
    assert _mart_rows(engine, "label_progress") > 0 and _mart_rows(engine, "item_index") == 80
    engine.dispose()
    # One history: every step the run took is in alsql's runs table, naming the Dagster run.
    assert [r.step for r in recorded] == ["ingest", "train", "infer", "drift", "select", "marts"]
    assert "label_progress" in recorded[-1].params["select"]
    assert all(r.status == "succeeded" for r in recorded)
    assert all(result.run_id[:8] in r.trigger for r in recorded)
    assert all((r.params or {}).get("dagster_run_id") == result.run_id for r in recorded if r.step != "drift")


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_predictions_runs_share_the_chunks(pg_url, tmp_path):
    from alsql.pipelines.steps import run_step

    engine = make_engine(pg_url)
    proj, oracle = make_project(engine, tmp_path / "png", 80)
    label(engine, proj.project_id, oracle, sorted(oracle)[:30])
    settings = settings_for(pg_url, tmp_path, infer={"batch_size": 8, "map": "none", "chunk_items": 5})
    model_id = run_step(engine, "train", proj.project_id, settings.watch["train"]).metrics["model_id"]
    from alsql.orchestration import build_definitions

    defs = build_definitions(settings)
    (predictions,) = [a for a in defs.assets if not isinstance(a, AssetSpec) and a.keys == {AssetKey("predictions")}]
    results: list = []

    def worker() -> None:
        with DagsterInstance.ephemeral() as instance:
            results.append(materialize([predictions], resources=resources(pg_url), instance=instance))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 2 and all(r.success for r in results)
    with engine.connect() as conn:
        done = conn.execute(select(func.count(), func.sum(work_chunks.c["items"]))
                            .where(work_chunks.c.model_id == model_id, work_chunks.c.status == "done")).one()
        infer = [m for m in conn.execute(select(runs.c.metrics).where(runs.c.step == "infer")).scalars()]
    assert prediction_counts(engine, model_id) == (80, 80)
    engine.dispose()
    assert tuple(done) == (16, 80)  # 80 keys in chunks of 5, each scored once
    assert len(infer) == 2 and sum(m["items"] for m in infer) == 80 and sum(m["chunks"] for m in infer) == 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _asset_nodes(port: int) -> list | None:
    body = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["data"]["assetNodes"]
    except (OSError, KeyError, TypeError, ValueError):
        return None


@pytest.mark.slow
def test_dagster_dev_serves_the_asset_graph(sqlite_url, tmp_path):
    home = tmp_path / "dagster-home"
    home.mkdir()
    (tmp_path / "png").mkdir()
    db = sqlite_url.removeprefix("sqlite:///")
    (tmp_path / "alsql.toml").write_text(
        f'database_url = "sqlite:///{db}"\n\n[sources.cams]\nuri = "{tmp_path / "png"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSQL_")} | {"DAGSTER_HOME": str(home)}
    port = _free_port()
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen([str(dagster), "dev", "-m", "alsql.orchestration", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        nodes, end = None, time.monotonic() + 240
        while nodes is None and time.monotonic() < end and proc.poll() is None:
            time.sleep(1)
            nodes = _asset_nodes(port)
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
        assert nodes is not None, "dagster dev did not answer /graphql within 240 s"
        paths = {"/".join(n["assetKey"]["path"]) for n in nodes}
        assert {"items/cams", "model", "predictions", "round", "label_progress", "alsql/items"} <= paths
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stdout.close()
