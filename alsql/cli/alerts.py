"""``alsql alerts [--project P] [--kind drift] [--limit N] [--json]``: recorded alerts, newest first.

Alerts are rows of the ``alerts`` table (today: prediction drift, written by the drift
step when the PSI passes its threshold). Each alert prints as two lines that read at 80
columns: the numbers formatted (value to three decimals, time to the minute), then the
message wrapped below; ``--json`` prints every field as stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["register", "list_alerts", "alerts_table"]


def list_alerts(engine: Engine, project: str | int | None = None, kind: str | None = None,
                limit: int = 50) -> list[dict]:
    """The newest ``limit`` alerts (of ``project`` and ``kind`` when given), as dicts."""
    from sqlalchemy import select

    from alsql.catalog import get_project
    from alsql.schema import alerts, projects

    a = alerts.c
    q = (select(a.alert_id, a.created_at, a.project_id, projects.c.name.label("project"), a.model_id, a.run_id,
                a.kind, a.value, a.message)
         .select_from(alerts.outerjoin(projects, projects.c.project_id == a.project_id))
         .order_by(a.alert_id.desc()).limit(limit))
    with engine.connect() as conn:
        if project is not None:
            q = q.where(a.project_id == get_project(conn, project).project_id)
        if kind is not None:
            q = q.where(a.kind == kind)
        return [dict(r._mapping) for r in conn.execute(q)]


def _value(row: dict) -> str:
    v = row["value"]
    if v is None:
        return ""
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"


def alerts_table(rows: list[dict]):
    """``rows`` from ``list_alerts`` as two lines each: the numbers on the first, the message
    (wrapped, indented) on the second, so nothing is cut at any terminal width."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    parts = []
    for r in rows:
        created = r["created_at"].strftime("%Y-%m-%d %H:%M UTC") if r["created_at"] is not None else ""
        line = Table.grid(padding=(0, 2))
        for justify in ("right", "left", "left", "left", "left", "right"):
            line.add_column(justify=justify, no_wrap=True)
        line.add_row(Text(f"#{r['alert_id']}", style="bold"), created,
                     Text(f"project {r['project']}" if r["project"] else "no project"),
                     f"model {r['model_id']}" if r["model_id"] else "", Text(r["kind"]), _value(r))
        parts += [line, Padding(Text(r["message"] or ""), (0, 0, 0, 4))]
    return Group(Text("alerts, newest first", style="bold"), *parts)


def alerts(
    project: Annotated[Optional[str], typer.Option(help="Project name or id (default: all)")] = None,
    kind: Annotated[Optional[str], typer.Option(help="Only alerts of this kind (e.g. drift)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest N alerts")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every field as stored)")] = False,
) -> None:
    """Drift and other alerts, newest first: when, which project and model, the value, why."""
    rows = list_alerts(get_engine(), project, kind, limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))
        return
    if not rows:
        console.print("no alerts" + (f" for project {project}" if project else ""), markup=False)
        return
    console.print(alerts_table(rows))


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)
