"""The demo: scikit-learn's digits (1,797 real 8x8 scans) as PNG files, then active learning.

``run_demo`` writes the PNGs, ingests them, and runs two projects over the same
items side by side: one selecting with a strategy, one at random (the baseline).
Both hold out the same random evaluation round (same seed, same pool), then run
rounds of select, oracle labels, train and infer. A table row is printed per round
and the strategy project's embedding map (the last model's t-SNE map; unlabeled items
grey, labeled ones by class, the last round's picks ringed) is written as a PNG.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["DIGIT_CLASSES", "write_digits", "DemoRow", "run_demo"]

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


def run_demo(engine, folder: str | Path, *, strategy: str = "margin", rounds: int = 7, budget: int = 30,
             first_budget: int = 40, eval_budget: int = 300, seed: int = 0, image_size: int = 8,
             map_path: str | Path = "embedding-map.png", say: Callable[[str], None] = print,
             on_round: Callable[[DemoRow], None] | None = None) -> list[DemoRow]:
    """The whole demo; returns one row per round (labels, both accuracies)."""
    from sqlalchemy import select

    from alsql.catalog import get_project
    from alsql.errors import AlsqlError
    from alsql.loaders.ingest import ingest
    from alsql.models.fit import TrainConfig
    from alsql.models.infer import infer_project
    from alsql.models.select import create_round
    from alsql.models.train import train_project
    from alsql.pipelines.loop import answer_round, hold_out_evaluation, load_oracle
    from alsql.pipelines.mapplot import plot_map
    from alsql.schema import model_versions

    if strategy == "random":
        raise AlsqlError("demo --strategy random: the demo compares a strategy with random; pick another")
    oracle_csv = write_digits(folder)
    report = ingest(engine, str(folder), entity_regex=r"writer-(\d+)")
    say(f"ingest: {report}")
    names = {strategy: _fresh_project(engine, f"digits-{strategy}", f"digits, {strategy} selection"),
             "random": _fresh_project(engine, "digits-random", "digits, random selection (baseline)")}
    projects, oracles = {}, {}
    for key, name in names.items():
        with engine.connect() as conn:
            projects[key] = get_project(conn, name)
        oracles[key] = load_oracle(engine, projects[key], oracle_csv)
        held = hold_out_evaluation(engine, projects[key], eval_budget, oracles[key], seed)
    say(f"projects {names[strategy]!r} and {names['random']!r}: {held} evaluation labels held out in each "
        f"(random, never trained on)")
    cfg = TrainConfig(epochs=10, min_steps=100, batch_size=32, patience=4, image_size=image_size, seed=seed)
    rows, last_model, last_round = [], None, None
    for r in range(rounds):
        t0 = time.perf_counter()
        acc, labels = {}, 0
        for key, proj in projects.items():
            k = first_budget if r == 0 else budget
            use = "random" if r == 0 else key  # the cold start is random for both
            rid = create_round(engine, proj.project_id, use, k, seed=seed + r)
            answer_round(engine, proj, rid, oracles[key])
            mid = train_project(engine, proj.project_id, cfg, grayscale=True)
            if key != "random":  # random needs no scores; the strategy's last ones draw the map
                infer_project(engine, proj.project_id, mid, device=cfg.device,
                              map_method="tsne" if r == rounds - 1 else "pca")  # the PNG's is t-SNE
            with engine.connect() as conn:
                row = conn.execute(select(model_versions).where(model_versions.c.model_id == mid)).one()
            acc[key], labels = row.metrics.get("accuracy"), row.label_count
            if key == strategy:
                last_model, last_round = mid, rid
        row = DemoRow(r + 1, labels, acc[strategy], acc["random"], time.perf_counter() - t0)
        rows.append(row)
        if on_round:
            on_round(row)
    n = plot_map(engine, projects[strategy].project_id, last_model, map_path, round_id=last_round)
    say(f"embedding map ({n} items) written to {map_path}")
    return rows
