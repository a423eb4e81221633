"""``alsql runs list|show ID|retry ID``: the recorded runs of the pipeline steps."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]

runs_app = typer.Typer(help="Recorded runs of the pipeline steps.", no_args_is_help=True)


@runs_app.command("list")
def list_(
    step: Annotated[Optional[str], typer.Option(help="Only this step")] = None,
    status: Annotated[Optional[str], typer.Option(help="queued, running, succeeded or failed")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs")] = 30,
) -> None:
    """The newest runs, newest first."""
    from rich.table import Table

    from alsql.pipelines.runs import list_runs

    table = Table("run", "step", "project", "status", "trigger", "worker", "started", "finished", "retry of")
    for r in list_runs(get_engine(), step=step, status=status, limit=limit):
        table.add_row(str(r.run_id), r.step, str(r.project_id or ""), r.status, (r.trigger or "")[:60],
                      r.worker or "", str(r.started_at or "")[:19], str(r.finished_at or "")[:19],
                      str(r.retry_of or ""))
    console.print(table)


@runs_app.command("show")
def show(run_id: Annotated[int, typer.Argument(help="Run id")]) -> None:
    """Everything recorded about one run: params, metrics, error."""
    from alsql.pipelines.runs import get_run

    r = get_run(get_engine(), run_id)
    for key in ("run_id", "step", "project_id", "status", "trigger", "worker", "retry_of", "started_at",
                "heartbeat_at", "finished_at"):
        console.print(f"{key:>12}: {getattr(r, key)}")
    console.print(f"{'params':>12}: {json.dumps(r.params or {}, default=str)}")
    console.print(f"{'metrics':>12}: {json.dumps(r.metrics or {}, default=str)}")
    if r.error:
        console.print(f"{'error':>12}: {r.error}")


@runs_app.command("retry")
def retry(run_id: Annotated[int, typer.Argument(help="A failed run's id")]) -> None:
    """Run a failed run's step again with the same params (recorded with retry_of)."""
    from alsql.pipelines.steps import retry_run

    run = retry_run(get_engine(), run_id)
    console.print(f"run {run.run_id} (retry of {run_id}): {run.step} succeeded {run.metrics}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
