"""``alsql loop``: simulated active learning with an oracle answering from known labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def loop(
    project: Annotated[str, typer.Option(help="Project name or id")],
    rounds: Annotated[int, typer.Option(help="How many select-label-train-infer rounds")],
    budget: Annotated[int, typer.Option(help="Labels per round")],
    strategy: Annotated[str, typer.Option(help="Strategy name (before the first model: TypiClust on the encoder's stored vectors, else random)")],
    oracle: Annotated[Path, typer.Option(help="CSV of known labels: label + item_id|uri|path (checked whole first)")],
    root: Annotated[Optional[Path], typer.Option(
        help="Folder that 'path' values are relative to, as in `labels import` (default: the CSV's folder)")] = None,
    eval_budget: Annotated[int, typer.Option(help="Hold out a random evaluation round of this size first")] = 0,
    arch: Annotated[str, typer.Option(help="cnn or resnet18")] = "cnn",
    epochs: Annotated[int, typer.Option(help="Minimum epochs per training")] = 20,
    image_size: Annotated[int, typer.Option(help="Square image size (0: the project's setting, else chosen from "
                                                      "the items' median short side, at most 128; printed)")] = 0,
    grayscale: Annotated[bool, typer.Option("--grayscale", help="Read images as one channel")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    map_: Annotated[str, typer.Option("--map", help="2-D map of the last model's embeddings: tsne, pca or none")]
    = "tsne",
    map_every_round: Annotated[bool, typer.Option(
        "--map-every-round", help="Map every round's model, not only the last (a t-SNE costs minutes per round)")]
    = False,
) -> None:
    """Select, label from the oracle, train and infer, ROUNDS times; print each round as it ends, then a table."""
    from alsql.catalog import get_project
    from alsql.errors import AlsqlError
    from alsql.pipelines.loop import read_oracle

    if rounds < 1:
        raise AlsqlError(f"--rounds {rounds}: expected at least 1")
    if map_ not in ("tsne", "pca", "none"):
        raise AlsqlError(f"--map {map_!r}: expected tsne, pca or none")
    engine = get_engine()
    with engine.connect() as conn:
        proj = get_project(conn, project)
    known = read_oracle(engine, proj, oracle, root)  # the whole file checked before any training
    ignored = f"; {len(known.unknown)} name no item and are ignored" if known.unknown else ""
    console.print(f"oracle: {len(known.labels)} items known from {known.rows} rows{ignored}")

    from alsql.models.fit import TrainConfig
    from alsql.pipelines.loop import run_loop

    cfg = TrainConfig(arch=arch, epochs=epochs, device=device, image_size=image_size or None, seed=seed)
    table = Table("round", "strategy", "labels", "model", "accuracy", "balanced accuracy", "seconds")
    console.print(f"{rounds} rounds of {budget} labels ({strategy}); the map ({map_}) "
                  + ("after every round" if map_every_round else "after the last round"), markup=False)

    def show(r) -> None:
        acc = "n/a" if r.accuracy is None else f"{r.accuracy:.4f}"
        bal = "n/a" if r.balanced_accuracy is None else f"{r.balanced_accuracy:.4f}"
        console.print(f"round {r.round}/{rounds}: {r.strategy}, {r.labels} labels, model {r.model_id}, "
                      f"accuracy {acc}, balanced accuracy {bal}, {r.seconds:.1f} s", markup=False, soft_wrap=True)
        table.add_row(str(r.round), r.strategy, str(r.labels), str(r.model_id), acc, bal, f"{r.seconds:.1f}")

    run_loop(engine, proj.project_id, rounds, budget, strategy, known, cfg=cfg, eval_budget=eval_budget,
             seed=seed, grayscale=grayscale, on_round=show, map_method=None if map_ == "none" else map_,
             map_every_round=map_every_round, say=lambda m: console.print(m, markup=False))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("loop")(loop)
