"""``alsql demo``: the main job end to end on the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alsql.catalog import create_project
from alsql.cli.common import console, get_engine
from alsql.cli.status import print_status
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.ingest import ingest
from alsql.pipelines.demo import DIGIT_CLASSES, write_digits
from alsql.report import status_summary

__all__ = ["register"]


def demo(
    folder: Annotated[Path, typer.Option(help="Where the sample images are written")] = Path("demo-data"),
    project: Annotated[str, typer.Option(help="Project name")] = "digits",
) -> None:
    """Write the digits sample, ingest it, and show the status."""
    console.print(f"writing scikit-learn's digits as PNG files under {folder}/")
    write_digits(folder)
    engine = get_engine()
    report = ingest(engine, str(folder), entity_regex=r"writer-(\d+)")
    console.print(f"ingest: {report}")
    try:
        with write_transaction(engine) as conn:
            create_project(conn, project, DIGIT_CLASSES, "handwritten digits (scikit-learn)")
    except AlsqlError:
        pass  # the project exists from an earlier run
    print_status(status_summary(engine, project))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
