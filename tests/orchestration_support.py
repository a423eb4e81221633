"""Helpers for the Dagster code location tests: settings for a tiny project, the resource, sensor ticks."""

from __future__ import annotations

import json

from alsql.config import Settings
from pipeline_helpers import QUICK_TRAIN


def settings_for(url: str, tmp_path, sources: dict | None = None, **watch) -> Settings:
    """Settings on ``url`` with fast training, chunked inference without a map, and ``watch`` rules."""
    rules = dict(retrain_labels=50, queue_low=10, round_budget=20, marts=True,
                 train=QUICK_TRAIN | {"grayscale": True, "artifacts": str(tmp_path / "art")},
                 infer={"batch_size": 64, "map": "none", "chunk_items": 40})
    return Settings(database_url=url, watch=rules | watch, sources=sources or {})


def resources(url: str) -> dict:
    from alsql.orchestration.resources import AlsqlResource

    return {"alsql": AlsqlResource(database_url=url)}


def tick(defs, name: str, url: str, cursor: str | None = None):
    """Evaluate sensor ``name`` once on ``cursor``; return Dagster's tick data (run requests, cursor, skip)."""
    from dagster import DagsterInstance, build_sensor_context

    sensor = defs.resolve_sensor_def(name)
    with DagsterInstance.ephemeral() as instance:
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources(url),
                                  definitions=defs) as ctx:
            return sensor.evaluate_tick(ctx)


def projects_of(request) -> list[str] | None:
    """The ``projects`` op config a run request gives (None when it gives none)."""
    ops = (request.run_config or {}).get("ops", {})
    found = {tuple(v["config"]["projects"]) for v in ops.values()}
    return list(found.pop()) if found else None


def cursor_of(data) -> dict:
    return json.loads(data.cursor) if data.cursor else {}
