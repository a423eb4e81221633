"""``alsql validate``: Great Expectations suites run inside the database."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from alsql.cli.common import console, err_console, get_engine
from alsql.config import get_settings
from alsql.errors import AlsqlError
from alsql.pipelines.validate import SUITES, ValidationReport, validate

__all__ = ["register", "print_report"]


def print_report(report: ValidationReport) -> None:
    """One row per expectation; failing rows show how many rows failed and sample ids."""
    table = Table("suite", "expectation", "column", "result", "failing rows", "sample ids", title="validate",
                  title_justify="left")
    for c in report.checks:
        verdict = "[green]pass[/green]" if c.success else "[red]FAIL[/red]"
        samples = "; ".join(json.dumps(s, default=str) for s in c.samples)
        table.add_row(c.suite, c.expectation.removeprefix("expect_column_"), c.column, verdict, f"{c.unexpected_count} / {c.element_count}",
                      escape(samples))
    console.print(table)


def validate_(
    suite: Annotated[Optional[list[str]], typer.Option("--suite", help=f"Only these suites ({', '.join(SUITES)})")] = None,
    sample: Annotated[int, typer.Option(help="Sample ids shown per failing expectation", min=1)] = 5,
) -> None:
    """Check items, annotations and predictions; exits 1 when any expectation fails."""
    chosen = tuple(suite or SUITES)
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        raise AlsqlError(f"--suite {', '.join(unknown)}: expected one of {', '.join(SUITES)}")
    get_engine()
    report = validate(get_settings().database_url, chosen, sample)
    print_report(report)
    for c in report.failures:
        ids = "; ".join(json.dumps(s, default=str) for s in c.samples)
        err_console.print(
            f"[red]failed:[/red] {c.suite}: {c.expectation} on {c.column}: {c.unexpected_count} of "
            f"{c.element_count} rows; e.g. {escape(ids)}",
            soft_wrap=True,
        )
    if not report.success:
        raise typer.Exit(1)
    console.print(f"all {len(report.checks)} expectations passed")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_)
