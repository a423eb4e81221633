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
    strategy: Annotated[str, typer.Option(help="Strategy compared with random")] = "margin",
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

    from alsql.report import status_summary

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
    by_key = {r.get("intersection_type", r.get("sound")): r for r in result.truth}
    if name == "traffic":
        table = Table("type", "cams", "accidents", "per cam", "true cams", "true per cam", "mean",
                      title="accidents per camera by intersection type: the mart beside the truth", title_justify="left")
        for r in result.answer:
            t = by_key[r["intersection_type"]]
            table.add_row(r["intersection_type"], str(r["cameras"]), str(r["accidents"]), _fmt(r["accidents_per_camera"]),
                          str(t["cameras"]), _fmt(t["accidents_per_camera"]), _fmt(t["generating_rate"], 1))
        top = max((r for r in result.answer if r["cameras"]), key=lambda r: float(r["accidents_per_camera"]))
        truth = max(result.truth, key=lambda r: r["generating_rate"])
        verdict = (f"the mart: {top['intersection_type']} has the most accidents per camera "
                   f"({_fmt(top['accidents_per_camera'])}); generated so: {truth['intersection_type']} "
                   f"(mean {truth['generating_rate']:.1f} a year)")
    else:
        table = Table("predicted", "clips", "failed after", "failure rate", "true clips", "true rate",
                      title="failure within the window after the clip: the mart beside the truth", title_justify="left")
        for r in result.answer:
            t = by_key[r["predicted_sound"]]
            table.add_row(r["predicted_sound"], str(r["clips"]), str(r["followed_by_failure"]), _fmt(r["failure_rate"]),
                          str(t["clips"]), _fmt(t["failure_rate"]))
        got = {r["predicted_sound"]: r["failure_rate"] for r in result.answer}
        want = {r["sound"]: r["failure_rate"] for r in result.truth}
        verdict = (f"the mart: failures follow predicted-abnormal sound at {_fmt(got.get('abnormal'))} against "
                   f"{_fmt(got.get('normal'))} after predicted-normal; truly abnormal {_fmt(want['abnormal'])} "
                   f"against {_fmt(want['normal'])}")
    console.print(table)
    if name == "traffic":
        console.print("mean: the yearly accident rate per camera the records were drawn with")
    else:
        for r in result.answer:
            console.print(f"how the log was drawn for {r['predicted_sound']} sound: {by_key[r['predicted_sound']]['generating']}")
    mark = "[green]agrees with the truth[/green]" if result.agrees else "[red]does not agree with the truth[/red]"
    console.print(f"{verdict}: {mark}")
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    console.print(f"project {result.project!r}; {steps}; scenario finished in {time.perf_counter() - t0:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
