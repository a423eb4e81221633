"""``alsql status [--project NAME]``."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine

__all__ = ["register", "print_status"]


def print_status(summary: dict) -> None:
    items = summary["items"]
    console.print(
        f"items: {sum(items.values())} ({items['ok']} ok, {items['corrupt']} corrupt, {items['missing']} missing)"
    )
    for p in summary["projects"]:
        scope = p.get("scope") or {}
        if any(scope.values()):  # a project limited to kinds, sources or prefixes says so
            from alsql.scope import Scope

            console.print(f"{p['project']} scope: {Scope(**{k: tuple(v) for k, v in scope.items()}).describe()}",
                          markup=False)
        table = Table(title=f"{p['project']}: {p['labels']} labels", title_justify="left")
        table.add_column("class")
        table.add_column("labels", justify="right")
        for cls, n in p["labels_per_class"].items():
            table.add_row(cls, str(n))
        console.print(table)
        if p["models"]:
            m = Table("model", "arch", "labels", "accuracy", "balanced accuracy", "macro-F1", "lowest recall",
                      title="models", title_justify="left")
            for r in p["models"]:
                fig = ["" if r.get(k) is None else f"{r[k]:.3f}" for k in ("accuracy", "balanced_accuracy", "macro_f1")]
                rec = sorted((v, c) for c, v in (r.get("per_class_recall") or {}).items() if v is not None)
                recall = f"{rec[0][1]} {rec[0][0]:.2f}" if rec else ""
                m.add_row(str(r["model_id"]), r["architecture"], str(r["label_count"] or ""), *fig, recall)
            console.print(m)
            console.print("balanced accuracy: the mean recall per class; every class's recall: --json",
                          style="dim", markup=False)
        if p["rounds"]:
            t = Table("round", "strategy", "purpose", "budget", "pending", title="rounds", title_justify="left")
            for r in p["rounds"]:
                t.add_row(str(r["round_id"]), r["strategy"], r["purpose"], str(r["budget"]), str(r["pending"]))
            console.print(t)


def status(
    project: Annotated[Optional[str], typer.Option(help="Project name or id (default: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Items by status, labels per class, models and rounds."""
    from alsql.report import status_summary

    summary = status_summary(get_engine(), project)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_status(summary)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
