"""``alsql demo``: the main job end to end on the embedded SQLite default.

Writes scikit-learn's digits as PNG files, ingests them, holds out a random
evaluation round, pretrains an encoder on the unlabeled pool (briefly), then runs
active-learning rounds with a simulated oracle for a strategy, the same strategy from
the pretrained encoder, and random side by side, printing a table per round, and writes
the embedding map PNG and the learning curves PNG.

``--scenario traffic`` / ``--scenario maintenance`` runs a worked scenario on generated
video or sound instead (``alsql.pipelines.scenarios``): rounds with an oracle, the
business table, the join mart, and the analyst's answer printed beside the truth the
data was generated from. ``--size small`` is the reduced size CI runs; ``--difficulty``
(easy, default, hard or a level in [0, 1]) sets how hard the generated media are to read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from alsql.cli.common import console, get_engine
from alsql.cli.status import print_status

__all__ = ["register"]


def demo(
    scenario: Annotated[Optional[str], typer.Option(
        help="A worked scenario on generated media instead of digits: traffic or maintenance")] = None,
    size: Annotated[str, typer.Option(help="Scenario size: full (the demo) or small (what CI runs)")] = "full",
    difficulty: Annotated[str, typer.Option(
        help="Scenario data: easy (a model learns it perfectly), default (an imperfect model: "
             "noisy and look-alike segments), hard, or a level from 0 to 1")] = "default",
    folder: Annotated[Optional[Path], typer.Option(
        help="Where the sample data is written (default: demo-data, or <scenario>-data)")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Strategy compared with random (default: the best measured rare-class seeker, alsql.models.strategies.DEFAULT_STRATEGY, benchmarks/rare_seeking.py)")] = None,
    rounds: Annotated[int, typer.Option(help="Active-learning rounds")] = 7,
    budget: Annotated[int, typer.Option(help="Labels per round (after the first)")] = 30,
    first_budget: Annotated[int, typer.Option(help="Random labels in the first (cold-start) round")] = 40,
    eval_budget: Annotated[int, typer.Option(help="Random evaluation labels held out")] = 300,
    image_size: Annotated[int, typer.Option(help="Square size the scans are read at (8: their own)")] = 8,
    map_png: Annotated[Path, typer.Option("--map", help="Embedding map PNG")] = Path("embedding-map.png"),
    curve_png: Annotated[Path, typer.Option("--curve", help="Learning curves PNG (with and without pretraining)")] = Path(
        "learning-curve.png"),
    pretrain_steps: Annotated[int, typer.Option(
        help="SimCLR steps on the unlabeled pool before the first label, for the pretrained arm (0: no such arm)")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
) -> None:
    """Digits -> PNG -> ingest -> evaluation round -> pretraining -> AL rounds (strategy with and
    without pretraining, beside random) -> map and learning curves.

    With --scenario: generated video (traffic) or sound (maintenance) -> ingest -> AL rounds
    -> the user's business table -> the join mart -> the analyst's answer beside the truth.
    """
    import torch

    from alsql.models.strategies import DEFAULT_STRATEGY
    from alsql.report import status_summary

    strategy = strategy or DEFAULT_STRATEGY
    if scenario is not None:
        torch.set_num_threads(1)
        _scenario(scenario, size, folder or Path(f"{scenario}-data"), strategy, seed, difficulty)
        return
    folder = folder or Path("demo-data")

    from alsql.pipelines.demo import run_demo

    torch.set_num_threads(1)  # tiny convolutions: one thread beats two that share the cores
    t0 = time.perf_counter()
    pre = pretrain_steps > 0
    columns = ["round", "labels", strategy] + ([f"{strategy} + pretraining", "head"] if pre else []) + ["random",
                                                                                                         "seconds"]
    table = Table(*columns, title=f"digits: evaluation accuracy, {strategy} "
                                  f"{'with and without pretraining, ' if pre else ''}beside random", title_justify="left")

    def fmt(a):
        return "n/a" if a is None else f"{a:.4f}"

    def show(row) -> None:
        cells = [str(row.round), str(row.labels), fmt(row.strategy_accuracy)]
        if pre:
            cells += [fmt(row.pretrained_accuracy), row.pretrained_head or "n/a"]
        table.add_row(*cells, fmt(row.random_accuracy), f"{row.seconds:.1f}")
        console.print(table)

    console.print(f"writing scikit-learn's digits as PNG files under {folder}/")
    engine = _demo_engine()
    run_demo(engine, folder, strategy=strategy, rounds=rounds, budget=budget, first_budget=first_budget,
             eval_budget=eval_budget, seed=seed, image_size=image_size, map_path=map_png, curve_path=curve_png,
             pretrain_steps=pretrain_steps, say=console.print, on_round=show)
    print_status(status_summary(engine, None))
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def _demo_engine():
    """The demo is self-contained on any backend: it creates its database (a SQLite file, or
    a PostgreSQL database where the server allows it) and migrates it to the newest schema."""
    from alsql import migrations
    from alsql.config import get_settings
    from alsql.db import check_sqlite_file
    from alsql.migrations.create import ensure_database

    url = get_settings().database_url
    check_sqlite_file(url, create=True)
    if ensure_database(url) or migrations.current(url) is None:
        migrations.upgrade(url)
    return get_engine(create=True)


def _fmt(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def _scenario(name: str, size: str, folder: Path, strategy: str, seed: int, difficulty: str = "default") -> None:
    from alsql.pipelines.scenarios.run import run_scenario

    t0 = time.perf_counter()
    rounds = Table("round", "strategy", "labels", "accuracy", title=f"{name}: active learning", title_justify="left")

    def show(r) -> None:
        rounds.add_row(str(r.round), r.strategy, str(r.labels), _fmt(r.accuracy, 4))

    engine = _demo_engine()
    result = run_scenario(engine, name, folder, size=size, strategy=strategy, seed=seed, difficulty=difficulty,
                          say=console.print, on_round=show)
    console.print(rounds)
    _print_answer(name, result)
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    console.print(f"project {result.project!r}; {steps}; scenario finished in {time.perf_counter() - t0:.0f} s")


def _ci(row: dict | None, digits: int = 2) -> str:
    if row is None or row.get("ci_low") is None:
        return "n/a"
    value = row.get("estimate", row.get("difference"))
    return f"{_fmt(value, digits)} [{_fmt(row['ci_low'], digits)}, {_fmt(row['ci_high'], digits)}]"


def _inside(flag) -> str:
    return "n/a" if flag is None else ("[green]yes[/green]" if flag else "[red]no[/red]")


def _print_answer(name: str, result) -> None:
    """The answer marts' naive, classical and PPI estimates with 95% intervals beside the truth,
    whether each interval holds the truth, the contrast's difference, and the verdict."""
    from alsql.pipelines.scenarios.answers import STORIES

    story, verdict = STORIES[name], result.verdict
    group, value = story.truth_key
    truth = {r[group]: r[value] for r in result.truth}
    level = next((r["level"] for r in result.estimates), 0.95)
    rows = {(r["grp"], r["estimator"]): r for r in result.estimates}
    labels = next((int(r["n_labeled"]) for r in result.estimates if r["estimator"] == "classical"), 0)
    table = Table("true class", "truth", "naive", "truth in", "classical", "truth in", "ppi", "truth in",
                  title=f"{result.estimand_label}: estimate [{level:.0%} CI] from {labels} evaluation labels and the "
                        f"model's predictions, beside the truth", title_justify="left")
    for g in sorted({r["grp"] for r in result.estimates}, key=lambda g: list(truth).index(g) if g in truth else 99):
        cells = [g, _fmt(truth.get(g))]
        for k in ("naive", "classical", "ppi"):
            cells += [_ci(rows.get((g, k))), _inside(verdict["covers"].get((g, k)))]
        table.add_row(*cells)
    a, b = story.contrast
    true_diff = verdict["true_difference"]
    diffs = Table("estimator", f"{a} - {b}", "p-value", "truth in", "excludes 0",
                  title=f"the difference {a} - {b}: truth {_fmt(true_diff)}", title_justify="left")
    for k in ("naive", "classical", "ppi"):
        d = verdict["difference"].get(k)
        p = None if d is None else d.get("p_value")
        diffs.add_row(k, _ci(d), "n/a" if p is None else f"{float(p):.3g}", _inside(None if d is None else d["covers"]),
                      "n/a" if d is None else ("yes" if d["excludes_zero"] else "no"))
    console.print(table)
    console.print(diffs)
    console.print("naive: the model's predicted classes only (ignores its errors); classical: the evaluation labels "
                  "only; ppi: prediction-powered, the labels correcting the predictions")
    d = verdict["difference"].get("ppi")
    if d is None:
        console.print("[red]does not agree with the truth[/red]: the answer marts have no PPI difference")
        return
    ppi_in = all(v for (_, k), v in verdict["covers"].items() if k == "ppi")
    said = (f"PPI: the truth lies {'inside' if ppi_in else 'outside'} the interval of "
            f"{'every' if ppi_in else 'some'} class; {a} - {b} = {_ci(d)}, which "
            f"{'covers' if d['covers'] else 'misses'} the true {_fmt(true_diff)} and "
            f"{'excludes' if d['excludes_zero'] else 'includes'} 0")
    mark = "[green]agrees with the truth[/green]" if result.agrees else "[red]does not agree with the truth[/red]"
    console.print(f"{said}: {mark}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
