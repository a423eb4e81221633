"""``alsql init`` and ``alsql db upgrade|downgrade|current|history|sql``."""

from __future__ import annotations

from typing import Annotated

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]

db_app = typer.Typer(help="Schema migrations (Alembic, shipped in the package).", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Upgrade the database to REVISION (default: head)."""
    from alsql import migrations
    from alsql.config import get_settings
    from alsql.db import check_sqlite_file

    check_sqlite_file(get_settings().database_url, create=True)
    migrations.upgrade(get_settings().database_url, revision)
    console.print(f"database at {migrations.current(get_settings().database_url)}")


@db_app.command("downgrade")
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, -1 or base")] = "-1") -> None:
    """Downgrade the database to REVISION (default: one step)."""
    from alsql import migrations
    from alsql.config import get_settings
    from alsql.db import check_sqlite_file

    check_sqlite_file(get_settings().database_url)
    migrations.downgrade(get_settings().database_url, revision)
    console.print(f"database at {migrations.current(get_settings().database_url) or 'base'}")


@db_app.command("current")
def current() -> None:
    """Print the revision the database is at (a missing SQLite file is not created)."""
    from alsql import migrations
    from alsql.config import get_settings
    from alsql.db import check_sqlite_file

    url = get_settings().database_url
    check_sqlite_file(url)
    console.print(migrations.current(url) or "base (not initialised)")


@db_app.command("history")
def history() -> None:
    """List the migrations, oldest first."""
    from alsql import migrations

    for rev, down, doc in migrations.history():
        console.print(f"{down or 'base'} -> [bold]{rev}[/bold]  {doc}")


@db_app.command("sql")
def sql(
    dialect: Annotated[str, typer.Option(help="mssql, postgresql or sqlite")] = "mssql",
    revision: Annotated[str, typer.Option(help="Up to this revision")] = "head",
) -> None:
    """Print the DDL of the migrations for DIALECT without a server (Alembic offline)."""
    from alsql import migrations

    typer.echo(migrations.offline_sql(dialect, revision))


def init() -> None:
    """Create or upgrade the database to the newest schema (a PostgreSQL database that does
    not exist is created when the server allows it; else the error names the command)."""
    from alsql import migrations
    from alsql.config import get_settings
    from alsql.db import check_sqlite_file, redact
    from alsql.migrations.create import ensure_database

    url = get_settings().database_url
    check_sqlite_file(url, create=True)
    before = None if ensure_database(url) else migrations.current(url)
    migrations.upgrade(url)
    get_engine().dispose()
    after = migrations.current(url)
    verb = "created" if before is None else ("upgraded" if before != after else "already up to date")
    console.print(f"{redact(url)}: {verb} (revision {after})")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(db_app, name="db")
