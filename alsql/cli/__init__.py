"""The ``alsql`` command: one sub-command per step.

Each module in this package registers its commands with ``register(app)``; they are
found by name, so a new step is a new module and nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Optional

import typer

from alsql.cli.common import err_console, set_database

__all__ = ["app", "main"]

app = typer.Typer(
    name="alsql",
    help="Active learning at scale on a SQL database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
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
) -> None:
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


def main() -> None:
    from rich.markup import escape

    from alsql.errors import AlsqlError

    try:
        app()
    except AlsqlError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
