"""``alsql runs list|show ID|retry ID``: the recorded runs of the pipeline steps."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register", "runs_table"]

runs_app = typer.Typer(help="Recorded runs of the pipeline steps.", no_args_is_help=True)


@runs_app.command("list")
def list_(
    step: Annotated[Optional[str], typer.Option(help="Only this step")] = None,
    status: Annotated[Optional[str], typer.Option(help="queued, running, succeeded or failed")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs")] = 30,
) -> None:
    """The newest runs, newest first (worker, params and the error: `alsql runs show ID`)."""
    from alsql.pipelines.runs import list_runs

    console.print(runs_table(list_runs(get_engine(), step=step, status=status, limit=limit)))


def _when(ts) -> str:
    return ts.strftime("%m-%d %H:%M:%S") if ts is not None else ""


def _took(r) -> str:
    if r.started_at is None or r.finished_at is None:
        return ""
    secs = (r.finished_at - r.started_at).total_seconds()
    return f"{secs:.1f}s" if secs < 100 else f"{secs / 60:.1f}m"


def runs_table(rows):
    """Runs as a table that reads at 80 columns: the trigger folds into the width left."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, kw in (("run", {"justify": "right"}), ("step", {}), ("project", {"justify": "right"}),
                     ("status", {}), ("started", {}), ("took", {"justify": "right"})):
        table.add_column(name, no_wrap=True, **kw)
    table.add_column("trigger", overflow="fold", ratio=1, min_width=16)
    for r in rows:
        trigger = (r.trigger or "") + (f" (retry of run {r.retry_of})" if r.retry_of else "")
        table.add_row(str(r.run_id), r.step, str(r.project_id or ""), r.status, _when(r.started_at), _took(r),
                      escape(trigger))
    return table


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
