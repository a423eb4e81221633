"""``alsql select``: a strategy picks the next items to label (a round)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def select_(
    project: Annotated[str, typer.Option(help="Project name or id")],
    strategy: Annotated[str, typer.Option(help="random, least_confidence, margin, entropy, bald, coreset, badge, cluster_margin, typiclust, balanced_margin, class_balanced, rare_boost, similar; active (evaluation only). Before the first model: TypiClust on the encoder's stored vectors")],
    budget: Annotated[int, typer.Option(help="How many items to pick")],
    purpose: Annotated[str, typer.Option(help="train, or evaluation (random or active; never trained on)")] = "train",
    model: Annotated[Optional[int], typer.Option(help="Model id (default: the latest)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (default: drawn and recorded)")] = None,
    show: Annotated[int, typer.Option(help="Print the first N picks")] = 10,
    for_: Annotated[Optional[str], typer.Option("--for", help="With --strategy active: the mart whose estimand the draw targets (maintenance_risk, defect_warranty, intersection_safety, business_events, fairness_by_group, model_performance)")] = None,
) -> None:
    """Create a round of up to BUDGET items, ranked by the strategy."""
    from sqlalchemy import select

    from alsql.catalog import get_project
    from alsql.models.select import create_round
    from alsql.pipelines.runs import cli_run
    from alsql.schema import items, round_items, rounds

    engine = get_engine()
    with engine.connect() as conn:
        proj = get_project(conn, project)
    params = {"strategy": strategy, "budget": budget, "purpose": purpose, "model_id": model, "seed": seed,
              "for": for_}
    with cli_run(engine, "select", proj.project_id, params) as run:
        rid = create_round(engine, proj.project_id, strategy, budget, purpose=purpose, model_id=model, seed=seed,
                           mart=for_, say=lambda m: console.print(m, markup=False))
        run.metrics["round_id"] = rid
    with engine.connect() as conn:
        rows = conn.execute(
            select(round_items.c.rank, round_items.c.item_id, round_items.c.score, items.c.uri)
            .join(items, items.c.item_id == round_items.c.item_id)
            .where(round_items.c.round_id == rid).order_by(round_items.c.rank)
        ).all()
    with engine.connect() as conn:
        used = conn.execute(select(rounds.c.strategy).where(rounds.c.round_id == rid)).scalar_one()
    console.print(f"round {rid}: {len(rows)} items ({used}, {purpose})")
    if show and rows:
        _print_picks(rows[:show])


def _print_picks(rows) -> None:
    """Each pick with its whole URI (a segment's ``#t=start,end`` included): a table whose URI
    column folds on a terminal, tab-separated lines (never wrapped, tabs kept) in a pipe."""
    cells = [(str(r.rank), str(r.item_id), "" if r.score is None else f"{r.score:.4f}", r.uri) for r in rows]
    if not console.is_terminal:
        console.file.write("".join("\t".join(line) + "\n" for line in [("rank", "item", "score", "uri"), *cells]))
        return
    t = Table("rank", "item", "score")
    for col in t.columns:
        col.no_wrap = True
    t.add_column("uri", overflow="fold")
    for c in cells:
        t.add_row(*c)
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("select")(select_)
