"""``alsql validate``: Great Expectations suites run inside the database."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from alsql.cli.common import console, err_console, get_engine
from alsql.errors import AlsqlError

if TYPE_CHECKING:
    from alsql.pipelines.validate import ValidationReport

__all__ = ["register", "print_report", "short_check", "SUITES"]

# The suites of alsql.pipelines.validate (SUITES there; a test checks they agree), named here
# so that the option's help needs no import of the validation module.
SUITES = ("items", "annotations", "predictions")


_PREFIXES = ("expect_column_pair_values_to_", "expect_column_values_to_", "expect_column_", "expect_")


def short_check(expectation: str) -> str:
    """``expect_column_values_to_be_unique`` -> ``unique``; ``..._to_not_be_null`` -> ``not null``."""
    name = expectation
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name.removeprefix("be_").replace("not_be_", "not_").replace("_", " ")


def print_report(report: ValidationReport) -> None:
    """One row per expectation, readable at 80 columns; failing rows' sample ids follow
    (one line each, on stderr) in ``validate_``."""
    table = Table("suite", "check", "column", "result", "failing rows", title="validate", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.columns[2].overflow = "fold"
    for col in (table.columns[0], table.columns[1], table.columns[3], table.columns[4]):
        col.no_wrap = True
    for c in report.checks:
        verdict = "[green]pass[/green]" if c.success else "[red]FAIL[/red]"
        table.add_row(escape(c.suite), escape(short_check(c.expectation)), escape(c.column), verdict,
                      f"{c.unexpected_count:,} of {c.element_count:,}")
    console.print(table)


def validate_(
    suite: Annotated[Optional[list[str]], typer.Option("--suite", help=f"Only these suites ({', '.join(SUITES)})")] = None,
    sample: Annotated[int, typer.Option(help="Sample ids shown per failing expectation", min=1)] = 5,
) -> None:
    """Check items, annotations and predictions; exits 1 when any expectation fails."""
    from alsql.config import get_settings
    from alsql.pipelines.validate import validate

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
