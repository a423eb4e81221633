"""``alsql labels import|export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine

__all__ = ["register"]

labels_app = typer.Typer(help="Import and export human labels.", no_args_is_help=True)


@labels_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV: item_id|uri|path, label, [annotator], [created_at]")],
    project: Annotated[str, typer.Option(help="Project name or id")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing")] = False,
    root: Annotated[Optional[Path], typer.Option(help="Folder that 'path' values are relative to")] = None,
    gold: Annotated[bool, typer.Option(
        "--gold", help="Known labels: gold items, mixed into annotators' queues unmarked (docs/quality.md)")] = False,
    annotator: Annotated[Optional[str], typer.Option(
        "--annotator", help="Who the labels are by: rows without an annotator (with --gold: every row; "
                            "default 'gold'). One annotator may not give an item two labels in a file; "
                            "different annotators may")] = None,
) -> None:
    """Validate every row, then append all labels (or none)."""
    from alsql.loaders.labels import import_labels

    if gold:
        report = import_labels(get_engine(), file, project, dry_run=dry_run, root=root, source="gold",
                               annotator="gold" if annotator is None else annotator)
    else:
        report = import_labels(get_engine(), file, project, dry_run=dry_run, root=root, annotator=annotator)
    table = Table("class", "labels")
    for name, n in sorted(report.per_class.items()):
        table.add_row(name, str(n))
    console.print(table)
    verb = "would write" if dry_run else "wrote"
    what = "gold labels" if gold else "labels"
    console.print(f"{report.rows} rows valid; {verb} {report.rows if dry_run else report.written} {what}")
    if report.closed:
        console.print(f"{report.closed} pending round items answered: marked labeled, no longer served")


@labels_app.command("export")
def export(
    project: Annotated[str, typer.Option(help="Project name or id")],
    format: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File (default: stdout)")] = None,
) -> None:
    """Write the current label of every labeled item."""
    from alsql.loaders.labels import export_labels

    if output is None:
        n = export_labels(get_engine(), project, format, sys.stdout)
    else:
        with output.open("w", newline="", encoding="utf-8") as fh:
            n = export_labels(get_engine(), project, format, fh)
        console.print(f"{n} labels written to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
