"""Sensors for the events ``alsql watch`` reacts to, with cursors and run keys.

Each sensor keeps a JSON cursor (``{key: mark}``) and asks for work only when its
rule holds past the mark, so a re-evaluated sensor never asks twice for the same
work; every request also carries a run key made of the state it saw, and the tag
``alsql/trigger`` (sensor, cursor mark, reason) that the steps copy into ``runs``.

- ``new_files_<source>`` (``[sources.NAME]``): files under the source that neither
  ``items`` nor ``sources`` (video / sound files) know -> ``items/<source>``, ``embeddings``
  (new items only, where a project has an encoder with stored vectors) and ``predictions``. Mark: a digest of the new URIs.
- ``labels_since_model`` (``[watch] retrain_labels``): at least N annotations newer
  than both the newest model's and the mark -> ``model``, ``predictions`` (and the
  marts when ``[watch] marts``). Mark: the newest annotation id when asked.
- ``label_queue_low`` (``[watch] queue_low``): fewer pending items to label than
  the threshold while ok items exist -> ``round``. Mark: the newest round id when
  asked; asked again once a new round exists, or after ``lease_seconds`` without one.
- ``drift_alert`` (``[watch] drift_threshold``, raised by the drift step after
  inference): a drift alert newer than the mark -> ``round`` (fresh items to label from
  the shifted data) and the marts. Mark: the newest alert id.
"""

import hashlib
import json
import os
import time
from collections.abc import Callable

from dagster import AssetKey, RunRequest, SensorDefinition, SensorEvaluationContext, SensorResult, SkipReason, sensor
from sqlalchemy import Engine, func, select

from alsql.orchestration.assets import items_key
from alsql.orchestration.config import OrchestrationConfig, Source
from alsql.orchestration.resources import TRIGGER_TAG, AlsqlResource, projects_in_scope
from alsql.pipelines.watch import labels_since_model, queue_size
from alsql.schema import alerts, annotations, items, rounds, sources
from alsql.schema.scope import in_scope

__all__ = ["build_sensors", "new_uris", "read_cursor", "MODEL", "PREDICTIONS", "ROUND", "EMBEDDINGS"]

MODEL, PREDICTIONS, ROUND = AssetKey("model"), AssetKey("predictions"), AssetKey("round")
EMBEDDINGS = AssetKey("embeddings")
_CONFIGURED = ("model", "predictions", "round")  # assets that take ProjectsConfig


def read_cursor(text: str | None) -> dict:
    """A sensor's cursor as a dict (an empty or unreadable cursor is ``{}``)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _request(keys: list[AssetKey], run_key: str, trigger: str, project: str | None = None) -> RunRequest:
    ops = {k.to_user_string(): {"config": {"projects": [project]}}
           for k in keys if project is not None and k.to_user_string() in _CONFIGURED}
    return RunRequest(run_key=run_key, asset_selection=keys, run_config={"ops": ops} if ops else {},
                      tags={TRIGGER_TAG: trigger[:200]})


def new_uris(engine: Engine, source: Source) -> list[str]:
    """URIs under the source (with a kind ``alsql ingest`` reads) that alsql has not indexed yet."""
    from alsql.loaders.confine import walk
    from alsql.loaders.ingest import IMAGE_EXTENSIONS, MEDIA_EXTENSIONS, source_uri
    from alsql.stores import store_for, uri_to_path

    prefix = source_uri(source.uri)
    if prefix.startswith("file:"):
        listed = [(e.uri, e.rel) for e in walk(uri_to_path(prefix), lambda _msg: None)]
    else:
        listed = [(u, u[len(prefix):]) for u in store_for(prefix).list(prefix)]
    kept = IMAGE_EXTENSIONS | MEDIA_EXTENSIONS
    uris = [u for u, rel in listed if os.path.splitext(rel.rsplit("?", 1)[0])[1].lower() in kept]
    known: set[str] = set()
    with engine.connect() as conn:
        for s in range(0, len(uris), 500):
            part = uris[s : s + 500]
            known.update(conn.execute(select(items.c.uri).where(items.c.uri.in_(part))).scalars())
            known.update(conn.execute(select(sources.c.uri).where(sources.c.uri.in_(part))).scalars())
    return [u for u in uris if u not in known]


def _files_sensor(cfg: OrchestrationConfig, source: Source, targets: list[AssetKey]) -> SensorDefinition:
    name = f"new_files_{source.name}"

    @sensor(name=name, asset_selection=targets, minimum_interval_seconds=max(1, int(cfg.rules.interval)),
            description=f"New files under {source.uri} -> ingest them and score them with the newest model.")
    def _sensor(context: SensorEvaluationContext, alsql: AlsqlResource):
        fresh = new_uris(alsql.engine(), source)
        if not fresh:
            return SkipReason(f"no new files under {source.uri}")
        mark = hashlib.sha256("\n".join(fresh).encode()).hexdigest()[:16]
        if read_cursor(context.cursor).get(source.name) == mark:
            return SkipReason(f"{len(fresh)} new files already requested (cursor {mark})")
        why = f"sensor {name} (cursor {mark}): {len(fresh)} new files under {source.uri}"
        return SensorResult(run_requests=[_request(targets, f"{name}:{mark}", why)],
                            cursor=json.dumps({source.name: mark}))

    return _sensor


def _per_project(name: str, description: str, targets: list[AssetKey], interval: float, projects: list | None,
                 decide: Callable[[Engine, int, str, dict], tuple[str, object, str] | None]) -> SensorDefinition:
    """A sensor that runs ``decide(engine, project_id, name, cursor)`` for each project in scope.

    ``decide`` returns ``(run key part, new mark, reason)`` when the rule holds, else None.
    """

    @sensor(name=name, asset_selection=targets, minimum_interval_seconds=max(1, int(interval)),
            description=description)
    def _sensor(context: SensorEvaluationContext, alsql: AlsqlResource):
        cursor, requests = read_cursor(context.cursor), []
        for pid, project in projects_in_scope(alsql.engine(), projects):
            hit = decide(alsql.engine(), pid, project, cursor)
            if hit is None:
                continue
            key, mark, reason = hit
            cursor[str(pid)] = mark
            why = f"sensor {name} (cursor {pid}:{json.dumps(mark)}): {reason}"
            requests.append(_request(targets, f"{name}:{pid}:{key}", why, project))
        if not requests:
            return SkipReason(f"{name}: rule not due for any project")
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor


def build_sensors(cfg: OrchestrationConfig, marts: list[AssetKey]) -> list[SensorDefinition]:
    """The sensors for ``cfg``'s sources and ``[watch]`` rules; ``marts``: the dbt asset keys."""
    r = cfg.rules
    with_marts = list(marts) if r.marts else []
    out = [_files_sensor(cfg, s, [items_key(s.name), EMBEDDINGS, PREDICTIONS]) for s in cfg.sources]

    def labels(engine: Engine, pid: int, project: str, cursor: dict):
        mark = int(cursor.get(str(pid), 0))
        with engine.connect() as conn:
            n_model, model = labels_since_model(conn, pid)
            newest = conn.execute(select(func.max(annotations.c.annotation_id))
                                  .where(annotations.c.project_id == pid)).scalar()
            fresh = conn.execute(select(func.count()).select_from(annotations).where(
                annotations.c.project_id == pid, annotations.c.annotation_id > mark)).scalar_one()
        n = min(n_model, fresh)
        if newest is None or n < r.retrain_labels:
            return None
        since = f"model {model}" if model else "the start (no model yet)"
        return f"a{newest}", int(newest), f"{n} labels since {since} (rule: >= {r.retrain_labels})"

    def queue(engine: Engine, pid: int, project: str, cursor: dict):
        with engine.connect() as conn:
            n = queue_size(conn, pid)
            pool = conn.execute(select(func.count()).select_from(items)
                                .where(items.c.status == "ok", in_scope(pid, items))).scalar_one()
            newest = conn.execute(select(func.max(rounds.c.round_id)).where(rounds.c.project_id == pid)).scalar()
        if n >= r.queue_low or not pool:
            return None
        newest, prev, now = int(newest or 0), cursor.get(str(pid)), int(time.time())
        again = 0
        if isinstance(prev, list) and len(prev) == 3 and prev[0] == newest:
            if now - prev[1] < r.lease_seconds:
                return None  # asked already and no round yet
            again = int(prev[2]) + 1  # asked long ago and still no round: ask again
        return f"r{newest}" + (f"-again{again}" if again else ""), [newest, now, again], \
            f"the queue holds {n} pending items (rule: < {r.queue_low})"

    def drift(engine: Engine, pid: int, project: str, cursor: dict):
        mark = int(cursor.get(str(pid), 0))
        with engine.connect() as conn:
            row = conn.execute(select(alerts.c.alert_id, alerts.c.message).where(
                alerts.c.project_id == pid, alerts.c.kind == "drift", alerts.c.alert_id > mark)
                .order_by(alerts.c.alert_id.desc()).limit(1)).first()
        if row is None:
            return None
        return f"alert{row.alert_id}", int(row.alert_id), f"drift alert {row.alert_id}: {row.message}"

    out.append(_per_project("labels_since_model",
                            f"{r.retrain_labels} new labels since the newest model -> train, infer"
                            + (", marts" if with_marts else ""),
                            [MODEL, PREDICTIONS, *with_marts], r.interval, r.projects, labels))
    out.append(_per_project("label_queue_low", f"fewer than {r.queue_low} items left to label -> a new round",
                            [ROUND], r.interval, r.projects, queue))
    out.append(_per_project("drift_alert", "a new drift alert -> a new round" + (", marts" if with_marts else ""),
                            [ROUND, *with_marts], r.interval, r.projects, drift))
    return out
