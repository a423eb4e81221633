"""The demo: scikit-learn's digits (1,797 real 8x8 scans) as PNG files, then active learning.

``run_demo`` writes the PNGs, ingests them, and runs projects over the same items side
by side: one selecting with a strategy, one at random (the baseline), and (unless
``pretrain_steps`` is 0) a third selecting with the strategy from a pretrained encoder:
before any label, ``alsql pretrain`` (SimCLR on the whole pool, unlabeled) trains that
project's encoder, its vectors of the pool are stored and its first labels are picked by
TypiClust on them (the cold start), and each of its rounds trains from it (``--init
pretrained``: a linear head on its stored vectors or the whole network fine-tuned, as
measured on the labels, ``alsql.models.heads.train_round_model``). Every project holds out
the same random evaluation round (same seed, same pool), then runs rounds of select, oracle
labels, train and infer. A table row is printed per round; the strategy project's embedding map (the last model's
t-SNE map; unlabeled items grey, labeled ones by class, the last round's picks ringed)
and the learning curves (evaluation accuracy by labels, with and without pretraining)
are written as PNGs.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from alsql.models.strategies import DEFAULT_STRATEGY

__all__ = ["DIGIT_CLASSES", "write_digits", "DemoRow", "run_demo", "plot_curves"]

DIGIT_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digits(folder: str | Path, scale: int = 4) -> Path:
    """Write every digit as ``folder/writer-NN/NNNN.png`` (upscaled ``scale``x).

    Returns the oracle CSV (``path,label``) beside the images: the known labels a
    simulated expert answers from. Writers (the scan's block of 100) become the
    item's entity through ``--entity-regex 'writer-(\\d+)'``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    oracle = root / "oracle.csv"
    with oracle.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "label"])
        for i, (img, target) in enumerate(zip(digits.images, digits.target)):
            rel = Path(f"writer-{i // 100:02d}") / f"{i:04d}.png"
            path = root / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = (img * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").resize((8 * scale, 8 * scale), Image.NEAREST).save(path)
            out.writerow([rel.as_posix(), DIGIT_CLASSES[int(target)]])
    return oracle



@dataclass
class DemoRow:
    round: int
    labels: int
    strategy_accuracy: float | None
    random_accuracy: float | None
    seconds: float
    pretrained_accuracy: float | None = None  # the strategy from the pretrained encoder (None: no such arm)
    pretrained_head: str | None = None  # frozen / finetune: how that round trained from the encoder


def _fresh_project(engine, base: str, description: str) -> str:
    from sqlalchemy import func, select

    from alsql.catalog import create_project, get_project
    from alsql.db import write_transaction
    from alsql.errors import AlsqlError
    from alsql.schema import annotations

    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            with write_transaction(engine) as conn:
                create_project(conn, name, DIGIT_CLASSES, description)
            return name
        except AlsqlError:
            with engine.connect() as conn:
                pid = get_project(conn, name).project_id
                used = conn.execute(select(func.count()).select_from(annotations)
                                    .where(annotations.c.project_id == pid)).scalar()
            if not used:
                return name
    raise AlsqlError(f"demo: no free project name like {base!r}")


def run_demo(engine, folder: str | Path, *, strategy: str = DEFAULT_STRATEGY, rounds: int = 7, budget: int = 30,
             first_budget: int = 40, eval_budget: int = 300, seed: int = 0, image_size: int = 8,
             map_path: str | Path = "embedding-map.png", curve_path: str | Path | None = "learning-curve.png",
             pretrain_steps: int = 600, pretrain_batch: int = 128, say: Callable[[str], None] = print,
             on_round: Callable[[DemoRow], None] | None = None) -> list[DemoRow]:
    """The whole demo; returns one row per round (labels, the accuracies).

    ``pretrain_steps`` > 0 adds the pretrained arm (SimCLR steps of ``pretrain_batch``
    items before the first label); ``curve_path`` (None: not drawn) gets the learning curves.
    """
    from sqlalchemy import select

    from alsql.catalog import get_project
    from alsql.errors import AlsqlError
    from alsql.loaders.ingest import ingest
    from alsql.models.fit import TrainConfig
    from alsql.models.infer import infer_project
    from alsql.models.select import create_round
    from alsql.models.heads import train_round_model
    from alsql.pipelines.loop import answer_round, first_strategy, hold_out_evaluation, load_oracle
    from alsql.pipelines.mapplot import plot_map
    from alsql.schema import model_versions

    if strategy == "random":
        raise AlsqlError("demo --strategy random: the demo compares a strategy with random; pick another")
    if pretrain_steps < 0:
        raise AlsqlError(f"demo --pretrain-steps {pretrain_steps}: expected 0 (no pretrained arm) or more")
    oracle_csv = write_digits(folder)
    report = ingest(engine, str(folder), entity_regex=r"writer-(\d+)")
    say(f"ingest: {report}")
    names = {strategy: _fresh_project(engine, f"digits-{strategy}", f"digits, {strategy} selection")}
    if pretrain_steps > 0:
        names[PRE] = _fresh_project(engine, f"digits-{strategy}-pretrained",
                                    f"digits, {strategy} selection from a pretrained encoder")
    names["random"] = _fresh_project(engine, "digits-random", "digits, random selection (baseline)")
    projects, oracles = {}, {}
    for key, name in names.items():
        with engine.connect() as conn:
            projects[key] = get_project(conn, name)
        oracles[key] = load_oracle(engine, projects[key], oracle_csv)
        held = hold_out_evaluation(engine, projects[key], eval_budget, oracles[key], seed)
    say(f"projects {', '.join(repr(n) for n in names.values())}: {held} evaluation labels held out in each "
        f"(random, never trained on)")
    cfg = TrainConfig(epochs=10, min_steps=100, batch_size=32, patience=4, image_size=image_size, seed=seed)
    if pretrain_steps > 0:
        _pretrain(engine, projects[PRE], pretrain_steps, pretrain_batch, image_size, seed, cfg.device, say)
    rows, last_model, last_round = [], None, None
    for r in range(rounds):
        t0 = time.perf_counter()
        acc, labels, head = {}, 0, None
        for key, proj in projects.items():
            k = first_budget if r == 0 else budget
            # The cold start: random, except the pretrained arm, whose pool is embedded by its
            # encoder and whose first labels TypiClust picks from those vectors (first_strategy).
            use = first_strategy(engine, proj.project_id, strategy if key == PRE else key, say)
            rid = create_round(engine, proj.project_id, use, k, seed=seed + r, say=say)
            answer_round(engine, proj, rid, oracles[key])
            # Every arm names its start: the strategy and random arms from random weights, the
            # pretrained arm from its encoder (a head or fine-tuned, as measured on its labels).
            mid = train_round_model(engine, proj.project_id, cfg, grayscale=True,
                                init="pretrained" if key == PRE else "random")
            if key != "random":  # random needs no scores; the strategy's last ones draw the map
                infer_project(engine, proj.project_id, mid, device=cfg.device,
                              map_method=None if key == PRE else ("tsne" if r == rounds - 1 else "pca"))
            with engine.connect() as conn:
                row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
            acc[key], labels = row.metrics.get("accuracy"), row.label_count
            if key == PRE:
                head = ((row.params or {}).get("init") or {}).get("head")
            if key == strategy:
                last_model, last_round = mid, rid
        row = DemoRow(r + 1, labels, acc[strategy], acc["random"], time.perf_counter() - t0, acc.get(PRE), head)
        rows.append(row)
        if on_round:
            on_round(row)
    n = plot_map(engine, projects[strategy].project_id, last_model, map_path, round_id=last_round)
    say(f"embedding map ({n} items) written to {map_path}")
    if curve_path is not None:
        plot_curves(rows, strategy, curve_path)
        say(f"learning curves written to {curve_path}")
    return rows


PRE = "pretrained"


def _pretrain(engine, project, steps: int, batch: int, image_size: int, seed: int, device: str,
              say: Callable[[str], None]) -> None:
    """``alsql pretrain`` on the project's pool (every item, unlabeled): ``steps`` SimCLR steps."""
    from alsql.models.pretrain import PretrainConfig
    from alsql.models.pretrain_pool import pretrain_project

    cfg = PretrainConfig(epochs=10_000, max_steps=steps, batch_size=batch, image_size=image_size, seed=seed,
                         device=device, checkpoint_every=10_000)
    out = pretrain_project(engine, project.project_id, cfg, grayscale=True)
    first, last = (out.loss_curve[0][1], out.loss_curve[-1][1]) if out.loss_curve else (None, None)
    loss = "" if first is None else f", contrastive loss {first:.2f} -> {last:.2f}"
    say(f"pretrained encoder model {out.model_id} for {project.name!r} on the whole pool, unlabeled: "
        f"{out.steps} steps of {batch}, {out.items_seen} items in {out.seconds:.1f} s{loss}")
    if out.learned is not None:  # the sentence alsql pretrain ends with
        say(out.learned)


def plot_curves(rows: list[DemoRow], strategy: str, path: str | Path) -> None:
    """Evaluation accuracy by labels: the strategy with and without pretraining, and random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.labels for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    arms = [(f"{strategy} + pretraining", [r.pretrained_accuracy for r in rows], dict(color="tab:green", lw=2.2)),
            (strategy, [r.strategy_accuracy for r in rows], dict(color="tab:blue", lw=1.6)),
            ("random", [r.random_accuracy for r in rows], dict(color="black", lw=1.6, ls="--"))]
    for name, acc, style in arms:
        pts = [(n, a) for n, a in zip(labels, acc) if a is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=name, **style)
    ax.set_xlabel("labels")
    ax.set_ylabel("accuracy on the held-out evaluation labels")
    ax.set_title("digits: learning curves with and without pretraining", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
