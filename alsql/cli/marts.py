"""``alsql marts build|docs|compile``: the packaged dbt project on the configured database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from alsql.cli.common import console, err_console, get_engine

if TYPE_CHECKING:
    from alsql.pipelines.marts import DbtResult

__all__ = ["register", "print_result", "docs_serve_hint"]

marts_app = typer.Typer(help="dbt marts for analysts: the item index joined with your data.", no_args_is_help=True)

WorkDir = Annotated[Path, typer.Option("--work-dir", help="Where dbt writes target/ and logs/")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show dbt's own log")]

_STYLE = {"success": "green", "pass": "green", "warn": "yellow", "skipped": "dim"}


def print_result(result: DbtResult) -> None:
    """A table of node results (failures first), then the verdict."""
    if result.nodes:
        table = Table("node", "type", "status", "seconds", "message", title=f"dbt {' '.join(result.command)}",
                      title_justify="left")
        order = sorted(result.nodes, key=lambda n: (n.status in _STYLE, n.resource_type, n.name))
        for n in order:
            style = _STYLE.get(n.status, "red")
            table.add_row(escape(n.name), n.resource_type, f"[{style}]{n.status}[/{style}]", f"{n.seconds:.2f}",
                          escape((n.message or "")[:200]))
        console.print(table)
        counts: dict[str, int] = {}
        for n in result.nodes:
            counts[n.status] = counts.get(n.status, 0) + 1
        console.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if result.error:
        err_console.print(f"[red]dbt error:[/red] {escape(result.error)}", soft_wrap=True)


def _finish(result: DbtResult) -> None:
    print_result(result)
    if not result.success:
        err_console.print(f"[red]dbt {' '.join(result.command)} failed[/red]: {len(result.failed)} node(s) failed")
        raise typer.Exit(1)


def _table_option(kind: str, env: str) -> typer.models.OptionInfo:
    return typer.Option(f"--{kind}", metavar="[SCHEMA.]TABLE",
                        help=f"Your {kind.replace('-', ' ').replace('gis', 'GIS')} table (else ${env}; unset: the "
                             f"demo records)")


@marts_app.command("build")
def build_(
    nodes: Annotated[Optional[list[str]], typer.Argument(
        metavar="NODES", show_default=False,
        help="More dbt selectors, as after --select: `--select a b` selects both, as in dbt")] = None,
    select: Annotated[Optional[list[str]], typer.Option("--select", "-s", help="dbt node selection")] = None,
    gis_accidents: Annotated[Optional[str], _table_option("gis-accidents", "ALSQL_GIS_ACCIDENTS_TABLE")] = None,
    warranty_claims: Annotated[Optional[str], _table_option("warranty-claims", "ALSQL_WARRANTY_CLAIMS_TABLE")] = None,
    maintenance_logs: Annotated[Optional[str], _table_option("maintenance-logs", "ALSQL_MAINTENANCE_LOGS_TABLE")] = None,
    dbt_vars: Annotated[Optional[str], typer.Option("--vars", help="dbt vars, a YAML mapping, e.g. "
                                                    "'{maintenance_window_days: 14}'")] = None,
    work_dir: WorkDir = Path("alsql-dbt"),
    verbose: Verbose = False,
) -> None:
    """Seed, build and test the marts (`dbt build`); exits 1 when any node fails.

    Business tables are named TABLE, SCHEMA.TABLE or (SQL Server) DATABASE.SCHEMA.TABLE.
    A join mart whose table is not named is empty but for the projects of var
    demo_projects, which the packaged demo records join; the build says so.
    """
    from alsql.config import get_settings
    from alsql.pipelines.marts import build
    from alsql.pipelines.business import business_vars, cli_vars, unset_warnings
    from alsql.pipelines.business_events import event_table_specs

    url = get_settings().database_url
    event_table_specs(get_settings().business)  # alsql.toml's [business.NAME] checked before dbt runs
    variables = cli_vars(dbt_vars) | business_vars(url, {
        "gis_accidents": gis_accidents, "warranty_claims": warranty_claims, "maintenance_logs": maintenance_logs})
    get_engine()  # refuses a missing SQLite file and an uninitialised server database
    select = [part for s in [*(select or []), *(nodes or [])] for part in s.split()]
    result = build(url, select, work_dir=work_dir, quiet=not verbose, extra_vars=variables)
    _finish(result)
    built = [n.name for n in result.nodes if n.status == "success"]
    for line in unset_warnings(variables, built):
        console.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True)


@marts_app.command("docs")
def docs_(work_dir: WorkDir = Path("alsql-dbt"), verbose: Verbose = False) -> None:
    """Generate the dbt docs site (index.html and catalog) under WORK_DIR/target."""
    from alsql.config import get_settings
    from alsql.pipelines.marts import docs

    get_engine()
    result = docs(get_settings().database_url, work_dir=work_dir, quiet=not verbose)
    print_result(result)
    if not result.success:
        raise typer.Exit(1)
    console.print(f"docs: {result.target_path / 'index.html'}; to browse them: {docs_serve_hint(result.target_path)}",
                  markup=False, soft_wrap=True)


def docs_serve_hint(target: Path, port: int = 8080) -> str:
    """A command that serves the generated docs (their page loads its JSON over HTTP, so
    opening the file directly shows nothing) and the address to open."""
    import shlex
    import sys

    return (f"{shlex.quote(sys.executable)} -m http.server {port} --bind 127.0.0.1 --directory "
            f"{shlex.quote(str(target))}  then open http://127.0.0.1:{port}/")


@marts_app.command("compile")
def compile_(work_dir: WorkDir = Path("alsql-dbt"), verbose: Verbose = False) -> None:
    """Compile the marts to this backend's SQL without connecting (e.g. to review T-SQL)."""
    from alsql.config import get_settings
    from alsql.pipelines.marts import compile_offline

    result = compile_offline(get_settings().database_url, work_dir=work_dir, quiet=not verbose)
    if not result.success:
        print_result(result)
        raise typer.Exit(1)
    console.print(f"compiled {len(result.nodes)} nodes under {result.target_path / 'compiled'}")


def register(app: typer.Typer) -> None:
    app.add_typer(marts_app, name="marts")
