"""``alsql round list|show|close``: a project's rounds, a round's items to hand to a team, closing one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]

round_app = typer.Typer(help="Active-learning rounds: list, show their items, close.", no_args_is_help=True)


@round_app.command("list")
def list_(project: Annotated[str, typer.Option(help="Project name or id")]) -> None:
    """The project's rounds, newest first, with their items counted by status (pending, labeled, skipped)."""
    from rich import box
    from rich.table import Table

    from alsql.loaders.rounds import round_summaries

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # reads at 80 columns
    for name in ("round", "strategy", "purpose", "status", "pending", "labeled", "skipped", "created"):
        fold = name in ("strategy", "created")
        table.add_column(name, no_wrap=not fold, overflow="fold" if fold else "ellipsis",
                         justify="right" if name in ("round", "pending", "labeled", "skipped") else "left")
    for r in round_summaries(get_engine(), project):
        created = r.created_at.strftime("%Y-%m-%d %H:%M") if hasattr(r.created_at, "strftime") else str(r.created_at)
        table.add_row(str(r.round_id), r.strategy, r.purpose, r.status, str(r.pending), str(r.labeled), str(r.skipped),
                      created)
    console.print(table)


@round_app.command("show")
def show(
    round_id: Annotated[int, typer.Argument(help="Round id (see `alsql round list`)")],
    format: Annotated[str, typer.Option("--format", help="table, csv or jsonl")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File (default: stdout)")] = None,
) -> None:
    """The round's items in rank order: rank, item_id, uri (in full, with its #t= part), score, status,
    assigned_to."""
    from alsql.errors import AlsqlError
    from alsql.loaders.rounds import ROUND_FORMATS, export_round, round_rows

    if format not in ROUND_FORMATS:
        raise AlsqlError(f"--format {format!r}: expected one of {', '.join(ROUND_FORMATS)}")
    engine = get_engine()
    if format == "table":
        from rich.markup import escape
        from rich.table import Table

        table = Table("rank", "item", "uri", "score", "status", "assigned_to")
        table.columns[2].overflow = "fold"  # the whole uri, folded, never cut
        for r in round_rows(engine, round_id):
            table.add_row(str(r["rank"]), str(r["item_id"]), escape(r["uri"]),
                          "" if r["score"] is None else f"{r['score']:.4f}", r["status"], escape(r["assigned_to"] or ""))
        console.print(table)
        return
    if output is None:
        export_round(engine, round_id, format, sys.stdout)
        return
    with output.open("w", newline="", encoding="utf-8") as fh:
        n = export_round(engine, round_id, format, fh)
    console.print(f"{n} items of round {round_id} written to {output}")


@round_app.command("close")
def close(round_id: Annotated[int, typer.Argument(help="Round id")]) -> None:
    """Close the round: its pending items become skipped, so the app stops serving them."""
    from alsql.loaders.rounds import close_round

    c = close_round(get_engine(), round_id)
    was = "was already closed" if c.was == "closed" else "closed"
    extra = f"; {c.copies_withdrawn} open overlap copies withdrawn" if c.copies_withdrawn else ""
    console.print(f"round {round_id} {was}: {c.skipped} pending items skipped, {c.labeled} labeled{extra}")


def register(app: typer.Typer) -> None:
    app.add_typer(round_app, name="round")
