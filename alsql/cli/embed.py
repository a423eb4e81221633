"""``alsql embed``: vectors of every ok item under a frozen encoder, computed once per encoder version."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def embed(
    project: Annotated[str, typer.Option(help="Project name or id")],
    encoder: Annotated[str, typer.Option(
        help="pretrained (the project's `alsql pretrain` encoder), hf:NAME_OR_FOLDER (a Hugging Face model: a "
             "folder saved with save_pretrained, or a name from the hub cache) or torchvision:NAME")] = "pretrained",
    weights: Annotated[Optional[str], typer.Option(
        help="Load the hf: model from this folder (or a torchvision state_dict file) instead of its name")] = None,
    claim: Annotated[bool, typer.Option(
        "--claim", help="Share the work with other `embed --claim` processes by chunk leases")] = False,
    dtype: Annotated[str, typer.Option(help="Stored vector type: float16 or float32")] = "float16",
    batch_size: Annotated[int, typer.Option(min=1, help="Items per forward pass")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    chunk_items: Annotated[int, typer.Option(min=1, help="With --claim: item keys per chunk")] = 5000,
    lease_seconds: Annotated[int, typer.Option(
        min=1, help="With --claim: a silent worker's chunk is taken over after this")] = 60,
    map_: Annotated[str, typer.Option(
        "--map", help="The encoder's 2-D map: tsne, pca or none (fitted once; later runs place new items)")] = "tsne",
) -> None:
    """Embed the project's items that the encoder has no vector of yet (a re-run finishes the rest)."""
    from alsql.catalog import get_project
    from alsql.errors import AlsqlError
    from alsql.pipelines.runs import cli_run

    if map_ not in ("tsne", "pca", "none"):
        raise AlsqlError(f"--map {map_!r}: expected tsne, pca or none")
    if dtype not in ("float16", "float32"):
        raise AlsqlError(f"--dtype {dtype!r}: expected float16 or float32")
    method = None if map_ == "none" else map_
    engine = get_engine()
    with engine.connect() as conn:
        project_id = get_project(conn, project).project_id
    params = {"encoder": encoder, "weights": weights, "dtype": dtype, "device": device, "claim": claim, "map": map_}
    with cli_run(engine, "embed", project_id, params) as run:
        if claim:
            from alsql.pipelines.embed_claims import embed_claimed

            rep = embed_claimed(engine, project_id, encoder, weights=weights, dtype=dtype, batch_size=batch_size,
                                device=device, chunk_items=chunk_items, lease_seconds=lease_seconds,
                                map_method=method)
        else:
            from alsql.models.embed import embed_project

            rep = embed_project(engine, project_id, encoder, weights=weights, dtype=dtype, batch_size=batch_size,
                                device=device, map_method=method)
        run.metrics.update(model_id=rep.encoder_model_id, items=rep.items, bad=rep.bad)
    rate = f" ({rep.items / rep.seconds:,.0f} items/s)" if rep.items and rep.seconds > 0 else ""
    chunks = f" in {len(rep.chunks)} chunks" if claim else ""
    console.print(f"encoder {rep.encoder_model_id} ({rep.spec}, {rep.dim}-d {rep.dtype}"
                  f"{', new version' if rep.created else ''}): embedded {rep.items:,} items{chunks}{rate}",
                  markup=False)
    if rep.bad:
        console.print(f"{rep.bad} item(s) could not be read and were marked missing or corrupt", markup=False)
    if rep.map is not None:
        console.print(f"map: {rep.map.method}, {rep.map.placed} items placed"
                      + (f" (note: {rep.map.note})" if rep.map.note else ""), markup=False)


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
