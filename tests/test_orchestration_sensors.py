"""Each sensor asks for its assets exactly when its ``[watch]`` rule holds, with a cursor that advances."""

from __future__ import annotations

import pytest

from tests.conftest import need_module  # noqa: E402

need_module("dagster")
need_module("dagster_dbt")

from dagster import AssetKey, DagsterInstance, validate_run_config  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from alsql.db import write_transaction  # noqa: E402
from alsql.schema import alerts, annotations, model_versions, round_items, runs  # noqa: E402
from conftest import add_items  # noqa: E402
from orchestration_support import cursor_of, projects_of, settings_for, tick  # noqa: E402
from pipeline_helpers import label, write_pngs  # noqa: E402

MODEL, PREDICTIONS, ROUND = AssetKey("model"), AssetKey("predictions"), AssetKey("round")


def _defs(url, tmp_path, **kw):
    from alsql.orchestration import build_definitions

    return build_definitions(settings_for(url, tmp_path, **kw))


def _labels(engine, project_id: int, item_ids) -> None:
    label(engine, project_id, {i: i % 5 for i in item_ids}, item_ids)


def _newest_annotation(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(annotations.c.annotation_id).order_by(annotations.c.annotation_id.desc())
                                .limit(1)).scalar_one())


def _assert_valid(defs, request) -> None:
    """The request's run config is valid for the assets it selects."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(request.asset_selection))
    assert validate_run_config(job, request.run_config) is not None


def test_labels_sensor_asks_for_a_model_after_n_labels_since_the_newest_model(engine, db_url, project, tmp_path):
    defs = _defs(db_url, tmp_path, retrain_labels=5)
    ids = add_items(engine, 30)
    _labels(engine, project.project_id, ids[:4])
    first = tick(defs, "labels_since_model", db_url)
    assert first.run_requests == [] and "not due" in first.skip_message

    _labels(engine, project.project_id, ids[4:5])
    due = tick(defs, "labels_since_model", db_url, first.cursor)
    (req,) = due.run_requests
    assert {MODEL, PREDICTIONS, AssetKey("label_progress"), AssetKey("item_index")} <= set(req.asset_selection)
    assert projects_of(req) == ["digits"]
    assert "labels_since_model" in req.tags["alsql/trigger"] and "5 labels since the start" in req.tags["alsql/trigger"]
    _assert_valid(defs, req)
    mark = _newest_annotation(engine)
    assert cursor_of(due) == {str(project.project_id): mark}
    assert req.run_key.endswith(f"a{mark}")
    # Evaluated again on the same state: the same run key, and nothing asked past the cursor.
    assert tick(defs, "labels_since_model", db_url).run_requests[0].run_key == req.run_key
    assert tick(defs, "labels_since_model", db_url, due.cursor).run_requests == []

    # Four more labels past the cursor: not yet; the fifth: asked again, with a new key and cursor.
    _labels(engine, project.project_id, ids[5:9])
    assert tick(defs, "labels_since_model", db_url, due.cursor).run_requests == []
    _labels(engine, project.project_id, ids[9:10])
    again = tick(defs, "labels_since_model", db_url, due.cursor)
    assert len(again.run_requests) == 1 and again.run_requests[0].run_key != req.run_key
    assert cursor_of(again)[str(project.project_id)] == _newest_annotation(engine) > mark

    # A model trained on every label: the rule counts from it, whatever the cursor.
    with write_transaction(engine) as conn:
        conn.execute(insert(model_versions).values(project_id=project.project_id, architecture="test", params={},
                                                   trained_on_annotation_id=_newest_annotation(engine)))
    assert tick(defs, "labels_since_model", db_url).run_requests == []


def test_labels_sensor_without_marts_asks_for_model_and_predictions_only(engine, db_url, project, tmp_path):
    defs = _defs(db_url, tmp_path, retrain_labels=2, marts=False)
    _labels(engine, project.project_id, add_items(engine, 3))
    (req,) = tick(defs, "labels_since_model", db_url).run_requests
    assert set(req.asset_selection) == {MODEL, PREDICTIONS}


def test_queue_sensor_asks_for_a_round_when_the_queue_is_low(engine, db_url, project, tmp_path):
    defs = _defs(db_url, tmp_path, queue_low=10, lease_seconds=600)
    assert tick(defs, "label_queue_low", db_url).run_requests == []  # no items: nothing to pick from
    add_items(engine, 40)
    due = tick(defs, "label_queue_low", db_url)
    (req,) = due.run_requests
    assert req.asset_selection == [ROUND] and projects_of(req) == ["digits"]
    assert "the queue holds 0 pending items" in req.tags["alsql/trigger"]
    _assert_valid(defs, req)
    assert tick(defs, "label_queue_low", db_url, due.cursor).run_requests == []  # asked; no round yet

    # The request, run as Dagster would: the round asset makes a round of round_budget items,
    # recorded in runs with the sensor and its cursor as the trigger.
    with DagsterInstance.ephemeral() as instance:
        res = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            run_config=req.run_config, tags=req.tags, asset_selection=req.asset_selection, instance=instance)
    assert res.success
    with engine.connect() as conn:
        metrics, trigger = conn.execute(select(runs.c.metrics, runs.c.trigger).where(runs.c.step == "select")).one()
    rid = metrics["round_id"]
    assert trigger.startswith(f"dagster run {res.run_id[:8]}: sensor label_queue_low (cursor {project.project_id}:")
    from typer.testing import CliRunner

    from alsql.cli import app

    with engine.connect() as conn:
        run_id = conn.execute(select(runs.c.run_id).where(runs.c.step == "select")).scalar_one()
    shown = CliRunner().invoke(app, ["--db", db_url, "runs", "show", str(run_id)])
    assert shown.exit_code == 0 and "label_queue_low" in shown.output and res.run_id in shown.output  # one history
    assert tick(defs, "label_queue_low", db_url, due.cursor).run_requests == []  # 20 pending
    with engine.connect() as conn:
        picked = list(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars())
    _labels(engine, project.project_id, picked[:15])
    low = tick(defs, "label_queue_low", db_url, due.cursor)
    (req2,) = low.run_requests
    assert req2.run_key.endswith(f"r{rid}") and req2.run_key != req.run_key
    assert cursor_of(low)[str(project.project_id)][0] == rid
    # A request that produced no round within lease_seconds is made again, under a new key.
    stale = f'{{"{project.project_id}": [{rid}, 0, 0]}}'
    (req3,) = tick(defs, "label_queue_low", db_url, stale).run_requests
    assert req3.run_key.endswith(f"r{rid}-again1")


def test_drift_sensor_asks_for_a_round_and_marts_on_a_new_drift_alert(engine, db_url, project, tmp_path):
    defs = _defs(db_url, tmp_path)
    assert tick(defs, "drift_alert", db_url).run_requests == []

    def alert(kind: str) -> int:
        with write_transaction(engine) as conn:
            return int(conn.execute(insert(alerts).values(project_id=project.project_id, kind=kind, value=0.5,
                                                          message="PSI 0.500 > 0.2").returning(alerts.c.alert_id))
                       .scalar_one())

    first = alert("drift")
    due = tick(defs, "drift_alert", db_url)
    (req,) = due.run_requests
    assert ROUND in req.asset_selection and AssetKey("prediction_drift") in req.asset_selection
    assert cursor_of(due) == {str(project.project_id): first}
    _assert_valid(defs, req)
    assert tick(defs, "drift_alert", db_url, due.cursor).run_requests == []
    alert("other")
    assert tick(defs, "drift_alert", db_url, due.cursor).run_requests == []
    second = alert("drift")
    again = tick(defs, "drift_alert", db_url, due.cursor)
    assert again.run_requests[0].run_key.endswith(f"alert{second}") and cursor_of(again)[str(project.project_id)] == second


def test_new_files_sensor_asks_to_ingest_files_alsql_has_not_seen(engine, db_url, tmp_path):
    from alsql.loaders.ingest import ingest

    folder = tmp_path / "incoming"
    write_pngs(folder, 3)
    (folder / "notes.txt").write_text("not an image")
    defs = _defs(db_url, tmp_path, sources={"cams": {"uri": str(folder)}})
    due = tick(defs, "new_files_cams", db_url)
    (req,) = due.run_requests
    assert set(req.asset_selection) == {AssetKey(["items", "cams"]), AssetKey("embeddings"), PREDICTIONS}
    assert "3 new files" in req.tags["alsql/trigger"]
    _assert_valid(defs, req)
    assert set(cursor_of(due)) == {"cams"}
    assert tick(defs, "new_files_cams", db_url, due.cursor).run_requests == []

    ingest(engine, str(folder))
    assert tick(defs, "new_files_cams", db_url).run_requests == []  # every file indexed
    write_pngs(folder, 2, start=3)
    again = tick(defs, "new_files_cams", db_url, due.cursor)
    (req2,) = again.run_requests
    assert "2 new files" in req2.tags["alsql/trigger"] and req2.run_key != req.run_key
    assert cursor_of(again) != cursor_of(due)


def test_bad_sources_and_rules_are_refused_by_name(tmp_path, sqlite_url):
    from alsql.errors import AlsqlError
    from alsql.orchestration.config import OrchestrationConfig

    with pytest.raises(AlsqlError, match=r"\[sources.cams\] colour: unknown option"):
        OrchestrationConfig.from_settings(settings_for(sqlite_url, tmp_path, sources={"cams": {"uri": "x", "colour": 1}}))
    with pytest.raises(AlsqlError, match=r"\[sources.cams\]: expected a table with uri"):
        OrchestrationConfig.from_settings(settings_for(sqlite_url, tmp_path, sources={"cams": {}}))
    with pytest.raises(AlsqlError, match=r"\[sources.2cams\]: expected a name"):
        OrchestrationConfig.from_settings(settings_for(sqlite_url, tmp_path, sources={"2cams": {"uri": "x"}}))
    with pytest.raises(AlsqlError, match=r"\[watch\] infer: workers: unknown option"):
        OrchestrationConfig.from_settings(settings_for(sqlite_url, tmp_path, infer={"workers": 2}))
