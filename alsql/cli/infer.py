"""``alsql infer``: predictions, scores and embeddings for every unscored ok item."""

from __future__ import annotations

from typing import Annotated

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def infer(
    project: Annotated[str, typer.Option(help="Project name or id")],
    model: Annotated[str, typer.Option(help="Model id, or latest")] = "latest",
    bald: Annotated[int, typer.Option(help="MC-dropout passes for BALD (0: no BALD)")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per batch")] = 256,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision")] = False,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 0,
    claim: Annotated[
        bool, typer.Option("--claim", help="Share the work with other `infer --claim` processes by chunk leases")
    ] = False,
    chunk_items: Annotated[int, typer.Option(min=1, help="With --claim: items per chunk")] = 5000,
    lease_seconds: Annotated[int, typer.Option(min=1, help="With --claim: a silent worker's chunk is taken over after this")] = 60,
    map_: Annotated[str, typer.Option("--map", help="2-D map of the embeddings: tsne, pca or none")] = "tsne",
    map_sample: Annotated[int, typer.Option(help="Embeddings the map is fitted on; the rest are placed into it")]
    = 50_000,
) -> None:
    """Score the model's inference queue; a re-run after a crash finishes the rest."""
    from alsql.errors import AlsqlError
    from alsql.models.infer import infer_project

    if model != "latest" and not model.isdigit():
        raise AlsqlError(f"--model {model!r}: expected a model id or 'latest'")
    if map_ not in ("tsne", "pca", "none"):
        raise AlsqlError(f"--map {map_!r}: expected tsne, pca or none")
    method = None if map_ == "none" else map_
    from alsql.catalog import get_project
    from alsql.pipelines.runs import cli_run

    engine = get_engine()
    with engine.connect() as conn:
        project_id = get_project(conn, project).project_id
    params = {"model_id": None if model == "latest" else int(model), "batch_size": batch_size, "device": device,
              "bald": bald, "amp": amp, "claim": claim, "map": map_}
    if claim:
        from alsql.pipelines.claims import run_claims

        with cli_run(engine, "infer", project_id, params) as run:
            done = run_claims(engine, project_id, params["model_id"], chunk_items=chunk_items,
                              lease_seconds=lease_seconds, batch_size=batch_size, device=device, map_method=method,
                              map_sample=map_sample, bald=bald)
            run.metrics.update(model_id=done.model_id, items=done.items, chunks=len(done.chunks))
        console.print(f"model {done.model_id}: this worker scored {done.items} items in {len(done.chunks)} chunks"
                      + (f" ({done.took_over} taken over)" if done.took_over else ""))
        if done.mapped is not None:
            console.print(f"map: this worker finished the last chunk and placed {done.mapped} items")
        _warn_one_class(engine, project_id, done.model_id)
        return
    with cli_run(engine, "infer", project_id, params) as run:
        report = infer_project(engine, project_id, params["model_id"], bald=bald, batch_size=batch_size,
                               device=device, amp=amp, num_workers=workers, map_method=method, map_sample=map_sample)
        run.metrics.update(model_id=report.model_id, items=report.items)
    console.print(f"model {report.model_id}: scored {report.items} items" + (" (with BALD)" if report.bald else "")
                  + (" from stored vectors" if report.map is None and _head(engine, report.model_id) else ""))
    if report.map is not None:
        console.print(f"map: {report.map.method}, {report.map.placed} items placed"
                      + (f" (note: {report.map.note})" if report.map.note else ""))
    _warn_one_class(engine, project_id, report.model_id)


def _head(engine, model_id: int) -> bool:
    from sqlalchemy import select

    from alsql.models.heads import is_head
    from alsql.schema import model_versions

    with engine.connect() as conn:
        return is_head(conn.execute(select(model_versions.c.architecture)
                                    .where(model_versions.c.model_id == model_id)).scalar())


def _warn_one_class(engine, project_id: int, model_id: int) -> None:
    from alsql.catalog import get_project
    from alsql.models.infer import one_class_check

    with engine.connect() as conn:
        classes = get_project(conn, project_id).classes
    line = one_class_check(engine, model_id, classes)
    if line:
        console.print(f"warning: {line}", markup=False, style="yellow")


def register(app: typer.Typer) -> None:
    app.command("infer")(infer)
