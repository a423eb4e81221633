"""``alsql train``: fit a network on the project's labels and record a model version."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from alsql.cli.common import console, get_engine, show_progress

__all__ = ["register", "EpochReporter"]


class EpochReporter:
    """Training progress: a rich bar on a terminal (epoch, loss, evaluation accuracy);
    off a terminal one plain line per evaluated epoch; nothing per epoch in CI."""

    unit = "epoch"  # the bar's label

    def __init__(self, bar: bool, lines: bool) -> None:
        self.bar, self.lines = bar, lines
        self.progress = self.task = None

    def __enter__(self) -> "EpochReporter":
        if self.bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn(self.unit), MofNCompleteColumn(), BarColumn(),
                                     TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                                     transient=False)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    @staticmethod
    def describe(row: dict) -> str:
        text = f"loss {row['train_loss']:.4f}"
        if row.get("evaluated"):
            acc = row.get("eval_accuracy")
            text += ", evaluation accuracy " + ("n/a" if acc is None or acc != acc else f"{acc:.4f}")
            bal = row.get("eval_balanced_accuracy")
            if bal is not None and bal == bal:
                text += f", balanced {bal:.4f}"
        return text

    def __call__(self, row: dict) -> None:
        if self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task("", total=row["epochs"])
            self.progress.update(self.task, completed=row["epoch"], total=row["epochs"],
                                 description=self.describe(row))
        elif self.lines and row.get("evaluated", True):
            console.print(f"epoch {row['epoch']}/{row['epochs']}: {self.describe(row)}", markup=False)


def train(
    project: Annotated[str, typer.Option(help="Project name or id")],
    arch: Annotated[str, typer.Option(help="cnn (small, fast on CPU) or resnet18")] = "cnn",
    epochs: Annotated[int, typer.Option(
        help="At least this many epochs (raised to reach --min-steps; early stopping after)")] = 30,
    min_steps: Annotated[Optional[int], typer.Option(
        help="At least this many optimizer steps: on a small label set --epochs is raised to reach it, at most "
             "300 epochs (60 labels at --batch-size 64 make 1 step per epoch); the output says when. Default: 600 "
             "for images, 200 for video and sound (200 for --head linear|mlp); recorded as params.min_steps")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch (per process)")] = 64,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 2e-3,
    patience: Annotated[int, typer.Option(help="Epochs without a better evaluation before stopping")] = 8,
    max_minutes: Annotated[Optional[float], typer.Option(
        help="Stop after the epoch that passes this many minutes of training, keep the best checkpoint so far "
             "and record stopped: max-minutes (the plan printed before training says whether it will)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (float16 on GPU, bfloat16 on CPU)")] = False,
    weights: Annotated[Optional[str], typer.Option(help="Initial weights: a local state-dict file")] = None,
    image_size: Annotated[Optional[int], typer.Option(
        help="Pixels per side images and video frames are resized to, 1..1024 (default: the project's "
             "setting, `alsql project set --image-size`, else from the items: their median short side, at most "
             "128 for images and 64 for video, printed); recorded with the model")] = None,
    grayscale: Annotated[bool, typer.Option("--grayscale", help="Read images as one channel")] = False,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help=(
        "Continue the checkpoint of an interrupted run (same labels, architecture, seed) whatever its settings; "
        "without it a checkpoint is continued only when every setting matches, and the output says which"))] = False,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore a checkpoint of an interrupted run")] = False,
    class_weight: Annotated[str, typer.Option(help=(
        "logit_adjust (default): train on logits plus the log of each class's share of the training labels "
        "(logit adjustment), so the network leaves a wider margin to a rare class; balanced: weigh the loss "
        "n / (k * n_c) per class; none: plain cross-entropy"))] = "logit_adjust",
    augment: Annotated[str, typer.Option(help=(
        "Training images changed at random, labels kept: auto (default): flip for colour images, none for "
        "one-channel images, sound and video; flip: mirrored left-right half the time; dihedral: flipped and "
        "transposed (the 8 orientations: parts, aerial or microscope images); none. "
        "Recorded as params.augment"))] = "auto",
    collapse_guard: Annotated[bool, typer.Option(
        "--collapse-guard/--no-collapse-guard",
        help="After training, score a sample of the unlabeled pool; when the model predicts one class for 95% "
             "of it or more, align its decision to the labels' class shares (printed and recorded as "
             "params.collapse_guard)")] = True,
    init: Annotated[str, typer.Option(
        help="pretrained: start from the project's newest encoder (`alsql pretrain`); random: fresh weights; "
             "auto (default): pretrained when the project has an encoder of this architecture that learned "
             "(its contrastive loss fell under 90% of chance; else random weights, said and recorded)")] = "auto",
    head: Annotated[str, typer.Option(
        help="From an encoder: frozen (train a linear head on its features), finetune (train the whole network), "
             "or auto (default): measured on the labels (cross-validated balanced accuracy of a frozen head, "
             "fine-tuning and, under --init auto, random weights; printed and recorded); linear or mlp: a head on the "
             "encoder's stored vectors (`alsql embed`), trained and scored without reading media")] = "auto",
    encoder_model: Annotated[Optional[int], typer.Option(
        help="With --head linear|mlp: the encoder model whose stored vectors to train on "
             "(default: the project's newest encoder with embeddings)")] = None,
) -> None:
    """Train on training_set, evaluate on evaluation_set, save the artifact.

    Under torchrun every process runs this command; rank 0 records the model.
    """
    from alsql.models.fit import TrainConfig, distributed
    from alsql.models.train import train_project

    from alsql.errors import AlsqlError

    if resume and no_resume:
        raise AlsqlError("--resume and --no-resume: expected one of them, not both")
    from alsql.models.fit import AUGMENTS, CLASS_WEIGHTS

    if class_weight not in CLASS_WEIGHTS:
        raise AlsqlError(f"--class-weight {class_weight!r}: expected {', '.join(CLASS_WEIGHTS)}")
    if augment not in AUGMENTS:
        raise AlsqlError(f"--augment {augment!r}: expected {', '.join(AUGMENTS)}")
    if max_minutes is not None and not max_minutes > 0:
        raise AlsqlError(f"--max-minutes {max_minutes:g}: expected a positive number of minutes")
    if head not in ("auto", "frozen", "finetune", "linear", "mlp"):
        raise AlsqlError(f"--head {head!r}: expected auto, frozen, finetune, linear or mlp")
    if head in ("linear", "mlp"):
        _train_head(project, head, encoder_model, epochs=epochs, batch_size=batch_size, lr=lr,
                    patience=patience, seed=seed, class_weight=class_weight, collapse_guard=collapse_guard,
                    **({} if min_steps is None else {"min_steps": min_steps}))
        return
    if encoder_model is not None:
        raise AlsqlError("--encoder-model: only with --head linear or --head mlp")
    cfg = TrainConfig(arch=arch, epochs=epochs, min_steps=min_steps, batch_size=batch_size, lr=lr, patience=patience,
                      device=device, amp=amp, image_size=image_size, num_workers=workers, seed=seed,
                      class_weight=class_weight, max_minutes=max_minutes, collapse_guard=collapse_guard,
                      augment=augment)
    asked = True if resume else (False if no_resume else None)
    engine = get_engine()
    import dataclasses
    import os

    from alsql.catalog import get_project
    from alsql.pipelines.runs import cli_run
    from alsql.pipelines.steps import model_metrics

    with engine.connect() as conn:
        project_id = get_project(conn, project).project_id
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None} | {
        "grayscale": grayscale, "init": init, "head": head, "weights": weights, "resume": asked}
    bar = show_progress()
    with cli_run(engine, "train", project_id, params) as run, \
            EpochReporter(bar=bar, lines=not bar and not os.environ.get("CI")) as report:
        model_id = train_project(engine, project_id, cfg, weights=weights, grayscale=grayscale, resume=asked,
                                 init=init, head=head, say=lambda m: console.print(m, markup=False),
                                 on_progress=report)
        if run.run_id:
            run.metrics.update(model_metrics(engine, model_id))
    if distributed()[0] == 0:
        from sqlalchemy import select

        from alsql.schema import model_versions

        with engine.connect() as conn:
            row = conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()
        acc = row.metrics.get("accuracy")
        start = (row.params or {}).get("init") or {}
        how = ""
        if start.get("init") == "pretrained":
            how = f" from encoder {start['encoder_model_id']} (" + (
                "a linear head on its frozen features)" if start.get("head") == "frozen" else "fine-tuned)")
        console.print(
            f"model {model_id}: {row.architecture}{how} on {row.label_count} labels, "
            f"{row.metrics.get('epochs')} epochs, accuracy "
            f"{'n/a (no evaluation set)' if acc is None else format(acc, '.4f')}"
        )
        m = row.metrics or {}
        if m.get("balanced_accuracy") is not None:
            console.print(f"balanced accuracy {m['balanced_accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}; recall: "
                          + ", ".join(f"{k} {'n/a' if v is None else format(v, '.3f')}"
                                      for k, v in m.get("per_class_recall", {}).items()), markup=False)
        cw = (row.params or {}).get("class_weights")
        adj = (row.params or {}).get("logit_adjustment")
        if adj:
            console.print("logit adjustment (log share of the training labels): " + ", ".join(
                f"{k} {v:+.2f}" for k, v in adj.items()), markup=False)
        else:
            console.print("class weights: " + ("none (plain cross-entropy)" if not cw else ", ".join(
                f"{k} {'-' if v is None else format(v, '.3g')}" for k, v in cw.items())), markup=False)
        console.print(f"artifact: {row.artifact_uri}")
        for line in m.get("warnings") or []:
            console.print(f"warning: {line}", markup=False, style="yellow")


def _train_head(project: str, head: str, encoder_model: int | None, **kw) -> None:
    """``alsql train --head linear|mlp``: a head on stored vectors (``alsql.models.heads.train_head``)."""
    from sqlalchemy import select

    from alsql.catalog import get_project
    from alsql.models.heads import train_head
    from alsql.pipelines.runs import cli_run
    from alsql.pipelines.steps import model_metrics
    from alsql.schema import model_versions

    engine = get_engine()
    with engine.connect() as conn:
        project_id = get_project(conn, project).project_id
    params = kw | {"head": head, "encoder_model_id": encoder_model}
    with cli_run(engine, "train", project_id, params) as run:
        model_id = train_head(engine, project_id, head=head, encoder_model_id=encoder_model,
                              say=lambda m: console.print(m, markup=False), **kw)
        if run.run_id:
            run.metrics.update(model_metrics(engine, model_id))
    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).one()
    m, p = row.metrics or {}, row.params or {}
    acc = m.get("accuracy")
    console.print(f"model {model_id}: {row.architecture} on the stored vectors of encoder {p['encoder_model_id']}, "
                  f"{row.label_count} labels, {m.get('epochs')} epochs ({m.get('seconds')} s), accuracy "
                  f"{'n/a (no evaluation set)' if acc is None else format(acc, '.4f')}", markup=False)
    if m.get("balanced_accuracy") is not None:
        console.print(f"balanced accuracy {m['balanced_accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}; recall: "
                      + ", ".join(f"{k} {'n/a' if v is None else format(v, '.3f')}"
                                  for k, v in m.get("per_class_recall", {}).items()), markup=False)
    cw = p.get("class_weights")
    console.print("class weights: " + ("none (plain cross-entropy)" if not cw else ", ".join(
        f"{k} {'-' if v is None else format(v, '.3g')}" for k, v in cw.items())), markup=False)
    for line in m.get("warnings") or []:
        console.print(f"warning: {line}", markup=False, style="yellow")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
