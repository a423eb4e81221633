"""The ``alsql`` command: one sub-command per step.

Each module in this package registers its commands with ``register(app)``; they are
found by name, so a new step is a new module and nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Optional

import typer

from alsql.cli.common import err_console, set_database, set_debug

__all__ = ["app", "main"]

app = typer.Typer(
    name="alsql",
    help="Active learning at scale on a SQL database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    # Help texts are read as Markdown, not Rich markup, so "[watch]" or "[annotator]"
    # print as written (the mode reaches every sub-command).
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    db: Annotated[
        Optional[str],
        typer.Option(
            "--db",
            help="Database URL (else ALSQL_DATABASE_URL, else sqlite:///alsql.db).",
            envvar="ALSQL_DATABASE_URL",
            show_envvar=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error instead of one line.")
    ] = False,
) -> None:
    set_debug(debug)
    if db:
        set_database(db)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "common" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """The console script: an everyday failure is one line on stderr and exit code 2.

    Bad input (AlsqlError), a database that cannot be reached or used, and a refused
    Azure request each print ``error: <input>: <cause>``; ``--debug`` shows the
    traceback instead. Other exceptions (bugs) keep their traceback.
    """
    from rich.markup import escape

    from alsql.cli.common import debug, explain

    try:
        app(args=argv)
    except Exception as exc:  # noqa: BLE001 - sorted into one-line answers and bugs below
        line = explain(exc)
        if line is None or debug():
            raise
        err_console.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
        raise SystemExit(2) from None
