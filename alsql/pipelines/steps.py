"""The pipeline steps by name, each run as a recorded run with connection retries.

A step is ``fn(engine, project_id, params, run) -> metrics dict``; ``run_step`` wraps it
in ``recorded_run`` (a ``runs`` row: running -> succeeded / failed) and
``call_with_retry`` (a lost connection is retried with backoff; when the attempts
are spent the run is marked failed with the error, which is re-raised). Steps write
in transactions and upsert, so a repeat after a lost connection finishes the rest and
nothing half-written stays visible.

Steps and their params: ``ingest`` (``uri``: a folder or store URI, and any of
``INGEST_OPTIONS``, the ``ingest()`` keywords), ``train`` (TrainConfig fields, ``grayscale``, ``artifacts``, ``init``, ``head``),
``pretrain`` (PretrainConfig fields, ``grayscale``, ``artifacts``, ``resume``: default true, so a
retried run continues from its checkpoint),
``infer`` (``model_id``, ``batch_size``, ``device``), ``embed`` (``encoder``: pretrained, hf:... or
torchvision:...; ``weights``, ``dtype``, ``device``, ``map``: new items only, see ``alsql.models.embed``), ``select`` (``strategy``,
``budget``, ``purpose``, ``model_id``, ``seed``, ``for``: the mart an active evaluation round targets), ``drift`` (``model_id``, ``threshold``),
``marts`` (``select``: dbt selectors), ``validate``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

from sqlalchemy import Engine

from alsql.errors import AlsqlError
from alsql.pipelines.retry import call_with_retry
from alsql.pipelines.runs import Run, get_run, recorded_run

__all__ = ["STEPS", "INGEST_OPTIONS", "run_step", "retry_run", "marts_available", "model_metrics"]


INGEST_OPTIONS = ("entity_regex", "attributes_csv", "max_bytes", "max_pixels", "segment", "stride", "workers",
                  "batch_size")


def _ingest(engine: Engine, project_id: int | None, params: dict, run: Run) -> dict:
    from alsql.loaders.ingest import ingest

    if not params.get("uri"):
        raise AlsqlError("step ingest: expected params with uri (a folder or az://container/prefix)")
    rep = ingest(engine, str(params["uri"]), **{k: params[k] for k in INGEST_OPTIONS if k in params})
    return {"new": rep.new, "present": rep.present, "corrupt": rep.corrupt, "missing": rep.missing,
            "repaired": rep.repaired, "warnings": rep.warning_count}


def _train(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.models.fit import TrainConfig
    from alsql.models.heads import train_round_model

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in params.items() if k in fields})
    # A head on the encoder's stored vectors when the head-or-fine-tune choice picks one, else the network.
    mid = train_round_model(engine, project_id, cfg, grayscale=bool(params.get("grayscale", False)),
                            artifacts=params.get("artifacts"), name=params.get("name") or f"run {run.run_id}",
                            init=params.get("init", "auto"), head=params.get("head", "auto"))
    return model_metrics(engine, mid)


def model_metrics(engine: Engine, model_id: int) -> dict:
    """What a train run records of the model it made: model_id, label_count, accuracy, epochs."""
    from sqlalchemy import select

    from alsql.schema import model_versions

    with engine.connect() as conn:
        row = conn.execute(select(model_versions.c.metrics, model_versions.c.label_count)
                           .where(model_versions.c.model_id == model_id)).first()
    metrics = (row.metrics or {}) if row is not None else {}
    return {"model_id": model_id, "label_count": None if row is None else row.label_count,
            "accuracy": metrics.get("accuracy"), "epochs": metrics.get("epochs")}


def _pretrain(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    cfg = PretrainConfig(**{k: v for k, v in params.items() if k in fields})
    out = pretrain_project(engine, project_id, cfg, grayscale=bool(params.get("grayscale", False)),
                           artifacts=params.get("artifacts"), name=params.get("name") or f"run {run.run_id}",
                           resume=bool(params.get("resume", True)))
    final = out.loss_curve[-1][1] if out.loss_curve else None
    return {"model_id": out.model_id, "steps": out.steps, "epochs": out.epochs, "items_seen": out.items_seen,
            "final_loss": None if final is None else round(final, 6)}


def _infer(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.models.infer import infer_project

    rep = infer_project(engine, project_id, params.get("model_id"), batch_size=int(params.get("batch_size", 256)),
                        device=params.get("device", "auto"))
    return {"model_id": rep.model_id, "items": rep.items}


def _embed(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.models.embed import embed_project

    rep = embed_project(engine, project_id, params.get("encoder", "pretrained"), weights=params.get("weights"),
                        dtype=params.get("dtype", "float16"), device=params.get("device", "auto"),
                        map_method=params.get("map", "tsne") if params.get("map", "tsne") != "none" else None,
                        say=lambda _line: None)
    return {"model_id": rep.encoder_model_id, "items": rep.items, "bad": rep.bad}


def _select(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.models.select import create_round

    rid = create_round(engine, project_id, params.get("strategy", "margin"), int(params.get("budget", 50)),
                       purpose=params.get("purpose", "train"), model_id=params.get("model_id"),
                       seed=params.get("seed"), mart=params.get("for"))
    return {"round_id": rid}


def _drift(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.pipelines.drift import DEFAULT_THRESHOLD, check_drift

    res = check_drift(engine, project_id, params.get("model_id"),
                      threshold=float(params.get("threshold", DEFAULT_THRESHOLD)), run_id=run.run_id)
    return res.as_metrics() if res else {"psi": None, "reason": "no model with predictions"}


def marts_available() -> bool:
    """True when the marts step (dbt) ships in this install."""
    return importlib.util.find_spec("alsql.pipelines.marts") is not None


def _marts(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    if not marts_available():
        raise AlsqlError("step marts: alsql.pipelines.marts is not installed")
    from alsql.pipelines import marts

    res = marts.build(engine.url, params.get("select"))
    if not res.success:
        raise AlsqlError(f"dbt build failed: {res.error or [n.name for n in res.failed]}")
    return {"nodes": len(res.nodes)}


def _validate(engine: Engine, project_id: int, params: dict, run: Run) -> dict:
    from alsql.pipelines.validate import validate

    rep = validate(engine.url)
    return {"success": bool(getattr(rep, "success", True))}


STEPS: dict[str, Callable[[Engine, int, dict, Run], dict]] = {
    "ingest": _ingest, "train": _train, "pretrain": _pretrain, "infer": _infer, "embed": _embed, "select": _select,
    "drift": _drift,
    "marts": _marts, "validate": _validate,
}


def run_step(engine: Engine, step: str, project_id: int | None, params: dict | None = None, *,
             trigger: str = "manual", run_id: int | None = None, retry_of: int | None = None,
             attempts: int = 4, backoff: float = 1.0, heartbeat_seconds: float = 10.0) -> Run:
    """Run ``step`` as a recorded run (a new row, or the queued row ``run_id``); return its handle."""
    if step not in STEPS:
        raise AlsqlError(f"step {step!r}: expected one of {', '.join(STEPS)}")
    fn = STEPS[step]
    with recorded_run(engine, step, project_id=project_id, trigger=trigger, params=params, run_id=run_id,
                      retry_of=retry_of, heartbeat_seconds=heartbeat_seconds) as run:
        run.metrics.update(call_with_retry(fn, engine, project_id, run.params, run, attempts=attempts, base=backoff))
    return run


def retry_run(engine: Engine, run_id: int, **kw) -> Run:
    """Run a failed run's step again with its params; the new row records ``retry_of``."""
    row = get_run(engine, run_id)
    if row.status != "failed":
        raise AlsqlError(f"run {run_id} is {row.status}: only failed runs can be retried")
    return run_step(engine, row.step, row.project_id, dict(row.params or {}), trigger=f"retry of run {run_id}",
                    retry_of=run_id, **kw)
