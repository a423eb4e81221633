"""``alsql train``: fit a network on the project's labels and record a model version."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine

__all__ = ["register"]


def train(
    project: Annotated[str, typer.Option(help="Project name or id")],
    arch: Annotated[str, typer.Option(help="cnn (small, fast on CPU) or resnet18")] = "cnn",
    epochs: Annotated[int, typer.Option(help="At least this many epochs (early stopping after)")] = 30,
    min_steps: Annotated[int, typer.Option(help="At least this many optimizer steps (small label sets)")] = 200,
    batch_size: Annotated[int, typer.Option(help="Images per batch (per process)")] = 64,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 2e-3,
    patience: Annotated[int, typer.Option(help="Epochs without a better evaluation before stopping")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (float16 on GPU, bfloat16 on CPU)")] = False,
    weights: Annotated[Optional[str], typer.Option(help="Initial weights: a local state-dict file")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Resize to this square size (default: the images' own)")] = None,
    grayscale: Annotated[bool, typer.Option("--grayscale", help="Read images as one channel")] = False,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore a checkpoint of an interrupted run")] = False,
) -> None:
    """Train on training_set, evaluate on evaluation_set, save the artifact.

    Under torchrun every process runs this command; rank 0 records the model.
    """
    from alsql.models.fit import TrainConfig, distributed
    from alsql.models.train import train_project

    cfg = TrainConfig(arch=arch, epochs=epochs, min_steps=min_steps, batch_size=batch_size, lr=lr, patience=patience,
                      device=device, amp=amp, image_size=image_size, num_workers=workers, seed=seed)
    engine = get_engine()
    model_id = train_project(engine, project, cfg, weights=weights, grayscale=grayscale, resume=not no_resume)
    if distributed()[0] == 0:
        from sqlalchemy import select

        from alsql.schema import model_versions

        with engine.connect() as conn:
            row = conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()
        acc = row.metrics.get("accuracy")
        console.print(
            f"model {model_id}: {row.architecture} on {row.label_count} labels, "
            f"{row.metrics.get('epochs')} epochs, accuracy "
            f"{'n/a (no evaluation set)' if acc is None else format(acc, '.4f')}"
        )
        console.print(f"artifact: {row.artifact_uri}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
