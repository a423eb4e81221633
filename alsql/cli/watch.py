"""``alsql watch``: run the pipeline steps when their triggers fire (rules in ``[watch]``)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def watch(
    interval: Annotated[Optional[float], typer.Option(
        help="Seconds between checks (default: the interval key of [watch] in alsql.toml, else 30)")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Check once, run what is due, say how far every other rule is from firing, and exit")] = False,
) -> None:
    """Train, infer, check drift, rebuild marts and open rounds when due; say what and why."""
    from alsql.config import get_settings
    from alsql.pipelines.watch import WatchRules, Watcher

    rules = WatchRules.from_mapping(get_settings().watch)
    if interval is not None:
        rules.interval = interval
    watcher = Watcher(get_engine(), rules, say=lambda m: console.print(m, markup=False), explain=once)
    console.print(f"watching every {rules.interval:g}s as {watcher.me}" if not once else f"checking once as {watcher.me}")
    try:
        watcher.run_forever(once=once)
    except KeyboardInterrupt:
        console.print("stopped")


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
