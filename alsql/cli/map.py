"""``alsql map``: the 2-D embedding map of a model (t-SNE on a sample, the rest transformed)."""

from __future__ import annotations

from typing import Annotated

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def map_(
    project: Annotated[str, typer.Option(help="Project name or id")],
    model: Annotated[str, typer.Option(help="Model id, or latest")] = "latest",
    method: Annotated[str, typer.Option("--map", help="tsne (openTSNE) or pca (the fast fallback)")] = "tsne",
    map_sample: Annotated[int, typer.Option(help="Embeddings the map is fitted on; the rest are placed into it")]
    = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of t-SNE")] = 0,
    jobs: Annotated[int, typer.Option(min=1, help="Threads for t-SNE")] = 2,
    refit: Annotated[bool, typer.Option("--refit", help="Fit a new map and place every item again")] = False,
) -> None:
    """Map the model's embeddings to 2-D; items already on its map keep their place unless --refit."""
    from alsql.catalog import get_project
    from alsql.errors import AlsqlError
    from alsql.models.maps import compute_map
    from alsql.models.pool import require_model

    if model != "latest" and not model.isdigit():
        raise AlsqlError(f"--model {model!r}: expected a model id or 'latest'")
    engine = get_engine()
    with engine.connect() as conn:
        proj = get_project(conn, project)
        model_id = require_model(conn, proj.project_id, None if model == "latest" else int(model))
    rep = compute_map(engine, model_id, method, sample=map_sample, seed=seed, n_jobs=jobs, refit=refit,
                      say=console.print)
    if rep.note:
        console.print(f"note: {rep.note}")
    console.print(f"model {rep.model_id}: {rep.method} map fitted on {rep.fitted} items, {rep.placed} items placed "
                  f"in {rep.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("map")(map_)
