"""``alsql search``: the items nearest a text, from a CLIP-like encoder's stored vectors."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def search(
    text: Annotated[str, typer.Argument(help="What to look for, in words (1 to 500 characters)")],
    project: Annotated[str, typer.Option(help="Project name or id")],
    k: Annotated[int, typer.Option("--k", min=1, max=10_000, help="Hits to return")] = 50,
    encoder_model: Annotated[Optional[int], typer.Option(
        help="The encoder (or a head of it) to search with; default: the project's newest encoder with a "
             "text tower and stored vectors")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Search every ok item of the project's scope, labeled ones too (default: the unlabeled "
                      "pool, not already pending in an open round)")] = False,
    round_: Annotated[bool, typer.Option(
        "--round", help="Make a train round (strategy search) of the hits that can be labeled")] = False,
    budget: Annotated[Optional[int], typer.Option(
        min=1, max=10_000, help="With --round: the round holds the BUDGET nearest hits (searched even when more "
                                "than --k; default --k)")] = None,
) -> None:
    """Find the items nearest a text by cosine similarity (an encoder with a text tower: a CLIP-like hf: model)."""
    from rich.table import Table

    from alsql.errors import AlsqlError
    from alsql.models.search import search as run_search
    from alsql.models.search import search_round

    if budget is not None and not round_:
        raise AlsqlError(f"--budget {budget}: applies to --round; pass --round to make a round of the hits")
    engine = get_engine()
    res = run_search(engine, project, text, max(k, budget or 0), encoder_model_id=encoder_model, include_labeled=all_)
    where = "ok items in scope" if all_ else "unlabeled pool items"
    if not res.hits:
        console.print(f"encoder {res.encoder_model_id} ({res.spec}): no {where} with a stored vector to search",
                      markup=False)
        return
    table = Table(title=f"nearest to {res.query!r}: encoder {res.encoder_model_id} ({res.spec}), "
                        f"{res.scanned:,} {where} compared")
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("item_id", justify="right", no_wrap=True)
    table.add_column("uri", overflow="fold")
    table.add_column("similarity", justify="right", no_wrap=True)
    for h in res.hits[:k]:
        table.add_row(str(h.rank), str(h.item_id), h.uri, f"{h.similarity:.4f}")
    console.print(table)
    if round_:
        from alsql.models.pool import latest_model_id

        with engine.connect() as conn:
            model_id = latest_model_id(conn, res.project_id)
        made = search_round(engine, res, model_id, budget if budget is not None else k)
        left = f" ({made['left_out']} labeled or already queued left out)" if made["left_out"] else ""
        console.print(f"round {made['round_id']}: {made['items']} items to label{left}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("search")(search)
