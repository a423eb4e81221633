"""``alsql pretrain``: self-supervised (SimCLR) pretraining of the project's encoder on its pool."""

from __future__ import annotations

import math
import time
from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine, show_progress
from alsql.cli.train import EpochReporter

__all__ = ["register", "StepReporter"]


class StepReporter(EpochReporter):
    """Pretraining progress: a rich bar of steps (loss, items) on a terminal; off a terminal a
    plain line every ``every`` steps; nothing per step in CI. Always, once ``eta_steps`` steps
    are timed (or the run ends first), one line with the plan and its duration: "planned N steps
    (E epochs x S steps), about M min" (``plan_line``)."""

    unit = "step"

    def __init__(self, bar: bool, lines: bool, every: int = 50, eta_steps: int = 5) -> None:
        super().__init__(bar, lines)
        self.every = max(1, every)
        self.eta_steps = max(1, eta_steps)
        self._first: tuple[int, float] | None = None  # (step, clock) at the first report
        self.planned: str | None = None

    @staticmethod
    def plan_line(row: dict, seconds_per_step: float | None, first_step: int = 1) -> str:
        """The plan of the run from a progress row; the duration covers the steps from
        ``first_step`` (a resumed run's earlier steps are done) at ``seconds_per_step``."""
        total, per = row["total"], row.get("per_epoch") or row["total"]
        epochs = math.ceil(total / max(1, per))
        capped = ", --max-steps" if epochs * per > total or epochs < row["epochs"] else ""
        text = f"planned {total} steps ({epochs} epoch{'s' if epochs != 1 else ''} x {per} steps{capped})"
        if seconds_per_step is None:
            return text
        minutes = seconds_per_step * (total - first_step + 1) / 60
        return text + f", about {minutes:.1f} min" if minutes < 10 else text + f", about {minutes:.0f} min"

    def _plan(self, row: dict) -> None:
        now = time.perf_counter()
        if self._first is None:
            self._first = (row["step"], now)
        step0, t0 = self._first
        timed = row["step"] - step0  # the first step pays the start-up: timing begins after it
        if timed < self.eta_steps and row["step"] < row["total"]:
            return
        self.planned = self.plan_line(row, (now - t0) / timed if timed else None, step0)
        target = self.progress.console if self.progress is not None else console
        target.print(self.planned, markup=False, soft_wrap=True)

    @staticmethod
    def describe(row: dict) -> str:
        return f"epoch {row['epoch']}/{row['epochs']}, loss {row['loss']:.4f}, {row['items']:,} items"

    def __call__(self, row: dict) -> None:
        if self.planned is None:
            self._plan(row)
        if self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task("", total=row["total"])
            self.progress.update(self.task, completed=row["step"], total=row["total"], description=self.describe(row))
        elif self.lines and (row["step"] % self.every == 0 or row["step"] == row["total"]):
            console.print(f"step {row['step']}/{row['total']}: {self.describe(row)}", markup=False)


def pretrain(
    project: Annotated[str, typer.Option(help="Project name or id")],
    arch: Annotated[str, typer.Option(help="cnn (small, fast on CPU) or resnet18: the network `alsql train` "
                                          "will start from (its audio / video form for such items)")] = "cnn",
    epochs: Annotated[int, typer.Option(help="Passes over the pool (every ok item, labeled or not)")] = 10,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many optimizer steps in all")] = None,
    batch_size: Annotated[int, typer.Option(
        help="Items per batch (per process); each item's negatives are the rest of its batch")] = 256,
    temperature: Annotated[float, typer.Option(help="NT-Xent temperature")] = 0.5,
    lr: Annotated[Optional[float], typer.Option(
        help="AdamW learning rate (default: 1e-2 for the image cnn, 1e-3 for audio/video/resnet18; "
             "warm-up, then cosine decay)")] = None,
    min_steps: Annotated[Optional[int], typer.Option(
        help="Raise --epochs on a small pool to reach this many optimizer steps (default 1500, 200 for "
             "sounds; --max-steps still caps)")] = None,
    projection_dim: Annotated[int, typer.Option(help="Output size of the projection head")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    amp: Annotated[Optional[bool], typer.Option(
        "--amp/--no-amp", help="Mixed precision (default: on with CUDA, off on CPU)")] = None,
    image_size: Annotated[Optional[int], typer.Option(
        help="Pixels per side images and video frames are resized to, 1..1024 (default: the project's "
             "setting, `alsql project set --image-size`, else chosen from the items: their median short side, at "
             "most 128 for images and 64 for video); recorded with the encoder")] = None,
    grayscale: Annotated[bool, typer.Option("--grayscale", help="Read images as one channel")] = False,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint "
                                                          "(same settings; the loss curve goes on)")] = False,
) -> None:
    """Pretrain the project's encoder on its whole pool (SimCLR), recorded as an encoder model version.

    `alsql train` then starts from it (`--init`, `--head`). Under torchrun every process
    runs this command; rank 0 records the encoder.
    """
    from alsql.models.fit import distributed
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    cfg = PretrainConfig(arch=arch, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                         temperature=temperature, lr=lr, projection_dim=projection_dim, seed=seed, device=device,
                         amp=amp, image_size=image_size, num_workers=workers, checkpoint_every=checkpoint_every,
                         **({} if min_steps is None else {"min_steps": min_steps}))
    engine = get_engine()
    import os

    bar = show_progress()
    with StepReporter(bar=bar, lines=not bar and not os.environ.get("CI")) as report:
        out = pretrain_project(engine, project, cfg, grayscale=grayscale, resume=resume, on_progress=report)
    if distributed()[0] == 0:
        from sqlalchemy import select

        from alsql.schema import model_versions

        with engine.connect() as conn:
            row = conn.execute(select(model_versions).where(model_versions.c.model_id == out.model_id)).one()
        m = row.metrics or {}
        loss = "n/a" if m.get("final_loss") is None else f"{m['final_loss']:.4f}"
        rate = "" if not m.get("items_per_second") else f", {m['items_per_second']:,.0f} items/s"
        epochs = f"{out.epochs} epoch{'s' if out.epochs != 1 else ''}"
        console.print(f"encoder {out.model_id}: {row.architecture}, {out.steps} steps, {epochs}, "
                      f"{out.items_seen:,} items, final loss {loss}{rate}"
                      + (" (resumed)" if out.resumed else ""), markup=False, soft_wrap=True)
        if out.learned is not None:
            console.print(out.learned, markup=False, soft_wrap=True)
        # One line each whatever the terminal's width: scripts read the artifact's uri.
        console.print(f"artifact: {row.artifact_uri}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
