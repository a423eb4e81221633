"""``alsql demo``: the main job end to end on the embedded SQLite default.

Writes scikit-learn's digits as PNG files, ingests them, holds out a random
evaluation round, then runs active-learning rounds with a simulated oracle for a
strategy and for random side by side, printing a table per round, and writes the
embedding map PNG.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine
from alsql.cli.status import print_status
from alsql.report import status_summary

__all__ = ["register"]


def demo(
    folder: Annotated[Path, typer.Option(help="Where the sample images are written")] = Path("demo-data"),
    strategy: Annotated[str, typer.Option(help="Strategy compared with random")] = "margin",
    rounds: Annotated[int, typer.Option(help="Active-learning rounds")] = 7,
    budget: Annotated[int, typer.Option(help="Labels per round (after the first)")] = 30,
    first_budget: Annotated[int, typer.Option(help="Random labels in the first (cold-start) round")] = 40,
    eval_budget: Annotated[int, typer.Option(help="Random evaluation labels held out")] = 300,
    image_size: Annotated[int, typer.Option(help="Square size the scans are read at (8: their own)")] = 8,
    map_png: Annotated[Path, typer.Option("--map", help="Embedding map PNG")] = Path("embedding-map.png"),
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
) -> None:
    """Digits -> PNG -> ingest -> evaluation round -> AL rounds (strategy beside random) -> map."""
    import torch

    from alsql.pipelines.demo import run_demo

    torch.set_num_threads(1)  # tiny convolutions: one thread beats two that share the cores
    t0 = time.perf_counter()
    table = Table("round", "labels", f"{strategy} accuracy", "random accuracy", "seconds",
                  title=f"digits: {strategy} beside random", title_justify="left")

    def fmt(a):
        return "n/a" if a is None else f"{a:.4f}"

    def show(row) -> None:
        table.add_row(str(row.round), str(row.labels), fmt(row.strategy_accuracy), fmt(row.random_accuracy),
                      f"{row.seconds:.1f}")
        console.print(table)

    console.print(f"writing scikit-learn's digits as PNG files under {folder}/")
    engine = get_engine(create=True)  # the demo is self-contained: it creates its database
    run_demo(engine, folder, strategy=strategy, rounds=rounds, budget=budget, first_budget=first_budget,
             eval_budget=eval_budget, seed=seed, image_size=image_size, map_path=map_png,
             say=console.print, on_round=show)
    print_status(status_summary(engine, None))
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
