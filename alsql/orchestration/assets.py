"""The pipeline as Dagster assets, each calling the functions the CLI and ``alsql watch`` call.

Asset graph (keys)::

    items/<source>  ->  model  ->  predictions  ->  round
         (ingest)      (train)    (infer + drift)   (select)

- ``items/<source>``: the ``ingest`` step on the source's URI and options.
- ``model``: the ``train`` step (``[watch] train`` params) for every project in scope
  that has labels.
- ``predictions``: chunked inference (``alsql.pipelines.claims.run_claims``): any
  number of runs of this asset, on any number of machines, claim chunks of the newest
  model's items until all are scored; items ingested after the chunks were planned are
  then scored by ``infer_project`` (as ``alsql infer`` would). After it, the ``drift``
  step (once per model), which may raise a drift alert.
- ``embeddings`` (beside ``model``, downstream of the items): the ``embed`` step for each project
  whose current encoder (``alsql embed``) lacks vectors of new items; only those are embedded.
- ``round``: the ``select`` step, ``[watch] round_budget`` items by ``[watch] strategy``
  (random before the first model).

Every step leaves a ``runs`` row (see ``alsql.orchestration.resources``). Each asset
takes ``ProjectsConfig`` (default: ``[watch] projects``, else every project).
"""

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, asset
from sqlalchemy import select

from alsql.orchestration.config import OrchestrationConfig, Source
from alsql.orchestration.resources import (
    AlsqlResource,
    ProjectsConfig,
    dagster_params,
    has_labels,
    projects_in_scope,
    trigger_of,
)
from alsql.pipelines.runs import recorded_run
from alsql.pipelines.steps import run_step
from alsql.pipelines.watch import missing_predictions
from alsql.schema import model_versions, runs

__all__ = ["items_key", "build_assets", "PIPELINE_GROUP", "INGEST_GROUP"]

PIPELINE_GROUP = "pipeline"
INGEST_GROUP = "ingest"


def items_key(source: str) -> AssetKey:
    """The asset key of a source's items."""
    return AssetKey(["items", source])


def _newest_model(engine, project_id: int) -> int | None:
    """The newest classifier (a pretrained encoder, status 'encoder', is not one)."""
    with engine.connect() as conn:
        return conn.execute(select(model_versions.c.model_id)
                            .where(model_versions.c.project_id == project_id, model_versions.c.status == "ready")
                            .order_by(model_versions.c.model_id.desc()).limit(1)).scalar()


def _drift_done(engine, project_id: int, model_id: int) -> bool:
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.metrics).where(runs.c.project_id == project_id, runs.c.step == "drift",
                                                         runs.c.status == "succeeded")
                            .order_by(runs.c.run_id.desc()).limit(50)).scalars()
        return any((m or {}).get("model_id") == model_id for m in rows)


def _items_asset(source: Source) -> AssetsDefinition:
    @asset(key=items_key(source.name), group_name=INGEST_GROUP, kinds={"python"},
           description=f"Items ingested from {source.uri} (`alsql ingest`).")
    def _items(context: AssetExecutionContext, alsql: AlsqlResource) -> MaterializeResult:
        params = dagster_params(context, {"source": source.name, "uri": source.uri, **source.options})
        run = run_step(alsql.engine(), "ingest", None, params, trigger=trigger_of(context))
        context.log.info(f"[{source.name}] ingest: run {run.run_id} {run.metrics}")
        return MaterializeResult(metadata={"run_id": run.run_id, **run.metrics})

    return _items


def build_assets(cfg: OrchestrationConfig) -> list[AssetsDefinition]:
    """The ingest and pipeline assets for ``cfg`` (the dbt marts are in ``alsql.orchestration.dbt``)."""
    rules = cfg.rules
    ingest_assets = [_items_asset(s) for s in cfg.sources]

    def scope(config: ProjectsConfig, engine) -> list[tuple[int, str]]:
        return projects_in_scope(engine, config.projects or rules.projects)

    @asset(group_name=PIPELINE_GROUP, deps=[a.key for a in ingest_assets], kinds={"pytorch"},
           description="A model trained on each project's labels (`alsql train`).")
    def model(context: AssetExecutionContext, config: ProjectsConfig, alsql: AlsqlResource) -> MaterializeResult:
        engine, made = alsql.engine(), {}
        for pid, name in scope(config, engine):
            if not has_labels(engine, pid):
                context.log.info(f"[{name}] no labels yet: nothing to train on")
                continue
            run = run_step(engine, "train", pid, dagster_params(context, rules.train), trigger=trigger_of(context))
            made[name] = run.metrics
            context.log.info(f"[{name}] train: run {run.run_id} {run.metrics}")
        return MaterializeResult(metadata={"models": made})

    @asset(group_name=PIPELINE_GROUP, deps=[model], kinds={"pytorch"},
           description="The newest model's predictions for every ok item, scored in claimed chunks "
                       "(`alsql infer --claim`); several runs share the chunks. Then the drift check.")
    def predictions(context: AssetExecutionContext, config: ProjectsConfig, alsql: AlsqlResource) -> MaterializeResult:
        from alsql.models.infer import infer_project
        from alsql.pipelines.claims import run_claims

        engine, opts, made = alsql.engine(), dict(rules.infer), {}
        method = None if opts.get("map", "tsne") == "none" else opts.get("map", "tsne")
        common = {"batch_size": int(opts.get("batch_size", 256)), "device": opts.get("device", "auto")}
        for pid, name in scope(config, engine):
            mid = _newest_model(engine, pid)
            if mid is None:
                context.log.info(f"[{name}] no model yet: nothing to score")
                continue
            with recorded_run(engine, "infer", project_id=pid, trigger=trigger_of(context),
                              params=dagster_params(context, opts | {"model_id": mid, "claim": True})) as run:
                rep = run_claims(engine, pid, mid, chunk_items=int(opts.get("chunk_items", 5000)),
                                 lease_seconds=int(opts.get("lease_seconds", 60)), map_method=method, **common)
                run.metrics.update(model_id=mid, items=rep.items, chunks=len(rep.chunks), took_over=rep.took_over)
                with engine.connect() as conn:
                    late, _ = missing_predictions(conn, pid)
                if late:  # ingested after the chunks were planned: plain inference scores the rest
                    run.metrics["late_items"] = infer_project(engine, pid, mid, map_method=method, **common).items
            made[name] = dict(run.metrics)
            if not _drift_done(engine, pid, mid):
                drift = run_step(engine, "drift", pid, {"model_id": mid, "threshold": rules.drift_threshold},
                                 trigger=f"after infer run {run.run_id}; {trigger_of(context)}")
                made[name]["drift"] = drift.metrics
            context.log.info(f"[{name}] infer: run {run.run_id} {made[name]}")
        return MaterializeResult(metadata={"predictions": made})

    @asset(name="round", group_name=PIPELINE_GROUP, deps=[predictions], kinds={"python"},
           description="A new round of items to label (`alsql select`), random before the first model.")
    def round_(context: AssetExecutionContext, config: ProjectsConfig, alsql: AlsqlResource) -> MaterializeResult:
        engine, made = alsql.engine(), {}
        for pid, name in scope(config, engine):
            strategy = rules.strategy if _newest_model(engine, pid) is not None else "random"
            run = run_step(engine, "select", pid, dagster_params(context, {"strategy": strategy,
                                                                           "budget": rules.round_budget}),
                           trigger=trigger_of(context))
            made[name] = run.metrics
            context.log.info(f"[{name}] select: run {run.run_id} {run.metrics}")
        return MaterializeResult(metadata={"rounds": made})

    @asset(name="embeddings", group_name=PIPELINE_GROUP, deps=[a.key for a in ingest_assets], kinds={"pytorch"},
           description="Vectors of new items under each project's current encoder (`alsql embed`): only the "
                       "items it has none of, under the same encoder version.")
    def embeddings_(context: AssetExecutionContext, config: ProjectsConfig, alsql: AlsqlResource) -> MaterializeResult:
        from alsql.models.embed import missing_vectors, step_params

        engine, made = alsql.engine(), {}
        for pid, name in scope(config, engine):
            with engine.connect() as conn:
                n, enc = missing_vectors(conn, pid)
            if not n:
                context.log.info(f"[{name}] no new items without encoder vectors")
                continue
            run = run_step(engine, "embed", pid, dagster_params(context, step_params(enc)), trigger=trigger_of(context))
            made[name] = run.metrics
            context.log.info(f"[{name}] embed: run {run.run_id} {run.metrics}")
        return MaterializeResult(metadata={"embeddings": made})

    return [*ingest_assets, model, predictions, round_, embeddings_]
