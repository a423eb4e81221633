"""``alsql serve``: the labeling app on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from alsql.cli.common import console

__all__ = ["register"]


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8000,
    max_body: Annotated[int, typer.Option(
        "--max-body", help="Largest request body in bytes (413 above it)", min=1024)] = 1 << 20,
) -> None:
    """Run the labeling app (pages and the JSON API under /api) for the configured database.

    Set ALSQL_SECRET_KEY so sessions survive a restart; add users with `alsql user add`.
    Slow or oversized requests are cut off (ALSQL_WEB_HEADER_TIMEOUT, ALSQL_WEB_BODY_TIMEOUT,
    ALSQL_WEB_MAX_CONNECTIONS ...); behind a reverse proxy set ALSQL_FORWARDED_ALLOW_IPS to
    its address, else X-Forwarded-For is ignored.
    """
    import uvicorn

    from alsql.cli.common import get_engine
    from alsql.config import get_settings
    from alsql.web import create_app
    from alsql.web.server import uvicorn_config

    get_engine()  # initialise an embedded database, refuse an uninitialised server
    app = create_app(get_settings().database_url, max_body=max_body)
    console.print(f"alsql labeling app on http://{host}:{port}/ (Ctrl+C stops it)")
    uvicorn.Server(uvicorn_config(app, host, port, log_level="info")).run()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
