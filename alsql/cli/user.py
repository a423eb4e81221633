"""``alsql user add|list|token|password|deactivate|activate``: who may use the labeling app.

``password`` and ``deactivate`` end every session of the user at once (the app reads
the users row on every request); ``deactivate`` also stops the user's token.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine
from alsql.errors import AlsqlError

__all__ = ["register"]

user_app = typer.Typer(help="Users of the labeling app (annotators and admins).", no_args_is_help=True)


@user_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[str, typer.Option("--role", help="annotator, reviewer (adjudicates disagreements) or admin")] = "annotator",
    password: Annotated[Optional[str], typer.Option(
        "--password", help="Password (at least 8 characters); asked for when not given")] = None,
    token: Annotated[bool, typer.Option("--token", help="Also create an API token (printed once)")] = False,
    no_password: Annotated[bool, typer.Option(
        "--no-password", help="Token only: no password login")] = False,
) -> None:
    """Add a user; the password is stored as an argon2 hash, the token as its SHA-256."""
    from alsql.db import write_transaction
    from alsql.web.auth import add_user, new_token

    if no_password and not token:
        raise AlsqlError("--no-password needs --token (else the user could not log in)")
    if password is None and not no_password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    secret = new_token() if token else None
    with write_transaction(get_engine()) as conn:
        uid = add_user(conn, name, role, None if no_password else password, secret)
    console.print(f"user [bold]{name.strip()}[/bold] (id {uid}, {role}) added")
    if secret:
        console.print(f"token (shown once): {secret}", soft_wrap=True)


@user_app.command("token")
def token_(name: Annotated[str, typer.Argument(help="User name")]) -> None:
    """Give a user a new API token (the old one stops working); printed once."""
    from alsql.db import write_transaction
    from alsql.web.auth import set_token

    with write_transaction(get_engine()) as conn:
        secret = set_token(conn, name)
    console.print(f"token (shown once): {secret}", soft_wrap=True)


@user_app.command("password")
def password_(
    name: Annotated[str, typer.Argument(help="User name")],
    password: Annotated[Optional[str], typer.Option(
        "--password", help="New password (at least 8 characters); asked for when not given")] = None,
) -> None:
    """Set a user's password; every session of the user ends (log in again)."""
    from alsql.db import write_transaction
    from alsql.web.auth import set_password

    if password is None:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with write_transaction(get_engine()) as conn:
        set_password(conn, name, password)
    console.print(f"password of [bold]{name.strip()}[/bold] changed; its sessions have ended")


@user_app.command("deactivate")
def deactivate(name: Annotated[str, typer.Argument(help="User name")]) -> None:
    """Deactivate a user: its sessions and token stop working at once (labels stay)."""
    from alsql.db import write_transaction
    from alsql.web.auth import set_active

    with write_transaction(get_engine()) as conn:
        set_active(conn, name, False)
    console.print(f"user [bold]{name.strip()}[/bold] deactivated: sessions and token no longer work")


@user_app.command("activate")
def activate(name: Annotated[str, typer.Argument(help="User name")]) -> None:
    """Reactivate a deactivated user (it logs in again; its token works again)."""
    from alsql.db import write_transaction
    from alsql.web.auth import set_active

    with write_transaction(get_engine()) as conn:
        set_active(conn, name, True)
    console.print(f"user [bold]{name.strip()}[/bold] activated")


@user_app.command("list")
def list_() -> None:
    """List users with their roles."""
    from alsql.web.auth import list_users

    with get_engine().connect() as conn:
        rows = list_users(conn)
    table = Table("id", "name", "role", "token", "active")
    for r in rows:
        table.add_row(str(r["user_id"]), r["name"], r["role"], "yes" if r["has_token"] else "", "yes" if r["active"] else "no")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
