"""Pooling benchmark: the small CNN's global pooling and the video network's pooling over time,
on the generated rare-class sets where the thing looked for is small or brief.

Layouts (``alsql.models.networks``): ``avg`` + ``mean`` (the networks before, ``LEGACY_LAYOUT``:
the last feature map averaged over a 2x2 grid, frame embeddings averaged over time) against
``avgmax`` + ``max`` (``LAYOUT``: the 2x2 average beside the maximum over the whole map, and the
maximum over frames); for video also the two mixed ones. Datasets of
``benchmarks/label_efficiency.py`` (the same builders, networks, training settings and test
split): part images with small defects, a rare behaviour in video segments, 20 letters with
five rare ones. The held-out dataset of that benchmark is never read here (it is kept out of
every choice of default).

Each cell: random labels from the pool (seeded), a network from random weights trained by
``alsql.models.fit.fit`` as the benchmark trains, balanced accuracy and the rare classes'
recall on the test split; mean over seeds (and each seed).

    python benchmarks/pooling.py [--seeds 2] [--budgets 100,400] [--datasets parts,behaviour,letters]

Prints a table and writes ``benchmarks/reports/pooling.json``.

``--rounds``: instead of random labels, active-learning rounds as ``label_efficiency.py`` runs
them (``run_arm``: its budgets, strategies and training; from scratch) with each layout, also on
its small-input sets, digits (8 px) and the maintenance sounds (16 x 26 log-mel): the measurement
behind ``alsql.models.networks.layout_for``. Accuracy and balanced accuracy per budget, mean over
seeds, and their mean over the budgets; writes ``benchmarks/reports/pooling_rounds.json``.

    python benchmarks/pooling.py --rounds --datasets digits,maintenance --strategies random,margin,typiclust --seeds 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

import label_efficiency as le  # noqa: E402

from alsql.models.fit import fit  # noqa: E402
from alsql.models.metrics import balanced_accuracy, confusion_matrix, per_class_recall  # noqa: E402
from alsql.models.networks import AudioCNN, SmallCNN, VideoNet  # noqa: E402

REPORT = Path(__file__).parent / "reports" / "pooling.json"
ROUNDS_REPORT = Path(__file__).parent / "reports" / "pooling_rounds.json"
console = Console(highlight=False, width=160)


def layouts(ds: le.Dataset) -> dict:
    """name -> a fresh network of the dataset's shape with that layout."""
    c, cin = len(ds.classes), int(ds.x.shape[-3])
    if ds.kind == "audio":
        return {p: (lambda p=p: AudioCNN(c, cin, width=16, pool=p)) for p in ("avg", "avgmax")}
    if ds.kind == "video":
        return {f"{p}+{t}": (lambda p=p, t=t: VideoNet(SmallCNN(c, cin, width=16, pool=p), c, temporal=t))
                for p, t in (("avg", "mean"), ("avgmax", "mean"), ("avg", "max"), ("avgmax", "max"))}
    return {p: (lambda p=p: SmallCNN(c, cin, width=16, pool=p)) for p in ("avg", "avgmax")}


def cell(ds: le.Dataset, make, budget: int, seed: int) -> dict:
    y = ds.y.numpy()
    pool, test = le.split(y, seed, len(ds.classes), ds.rare, False)
    lab = np.sort(np.random.default_rng(seed).choice(pool, budget, replace=False))
    torch.manual_seed(seed)
    net = make()
    batches, steps = le._batches(ds.x[lab], ds.y[lab], seed, ds.cfg.batch_size)
    t0 = time.perf_counter()
    fit(net, batches, None, ds.cfg, len(ds.classes), steps_per_epoch=steps)
    pred = le.score(net, ds.x[test], 0)["probs"].argmax(1)
    cm = confusion_matrix(y[test], pred, len(ds.classes))
    rec = per_class_recall(cm)
    return {"balanced_accuracy": round(balanced_accuracy(cm), 4),
            "rare_recall": round(float(np.nanmean(rec[ds.rare])), 4), "seconds": round(time.perf_counter() - t0, 1)}


_ROUND_SETS: dict[str, le.Dataset] = {}


def round_task(task: tuple[str, str, str, int]) -> tuple[str, str, str, int, list[dict]]:
    """One strategy's rounds on one dataset and seed, with one layout (``run_arm``, from scratch)."""
    name, lay, strategy, seed = task
    torch.set_num_threads(1)
    ds = dataclasses.replace(_ROUND_SETS[name], make_net=layouts(_ROUND_SETS[name])[lay])
    return name, lay, strategy, seed, le.run_arm(ds, strategy, seed, None)


def rounds(args, builders: dict, sets: list[str]) -> None:
    strategies = [s.strip() for s in args.strategies.split(",")]
    t0 = time.perf_counter()
    for name in sets:
        _ROUND_SETS[name] = builders[name]()
    tasks = [(name, lay, st, seed) for name in sets for lay in layouts(_ROUND_SETS[name])
             for st in strategies for seed in range(args.seeds)]
    done = []
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for r in pool.imap_unordered(round_task, tasks):
            done.append(r)
            console.print(f"{r[0]:12s} {r[1]:12s} {r[2]:10s} seed {r[3]}: "
                          + " ".join(f"{row['accuracy']:.3f}" for row in r[4]))
    report = {"mode": "rounds (label_efficiency.run_arm, from scratch)", "seeds": args.seeds,
              "strategies": strategies, "torch_threads": 1, "jobs": args.jobs, "datasets": {}}
    table = Table(title="accuracy (balanced accuracy) mean over seeds, then over budgets; rounds from scratch")
    for col in ("dataset", "strategy", "layout", "budgets: accuracy", "mean accuracy", "mean balanced"):
        table.add_column(col)
    for name in sets:
        d = report["datasets"][name] = {"note": _ROUND_SETS[name].note, "budgets": _ROUND_SETS[name].budgets,
                                        "by_strategy": {}}
        for st in strategies:
            for lay in layouts(_ROUND_SETS[name]):
                runs = [r[4] for r in done if r[0] == name and r[1] == lay and r[2] == st]
                acc = np.array([[row["accuracy"] for row in rows] for rows in runs])
                bal = np.array([[row["balanced_accuracy"] for row in rows] for rows in runs])
                d["by_strategy"].setdefault(st, {})[lay] = {
                    "accuracy": acc.mean(0).round(4).tolist(), "accuracy_std": acc.std(0).round(4).tolist(),
                    "balanced_accuracy": bal.mean(0).round(4).tolist(),
                    "mean_accuracy": round(float(acc.mean()), 4), "mean_balanced_accuracy": round(float(bal.mean()), 4),
                    "seeds": len(runs)}
                c = d["by_strategy"][st][lay]
                table.add_row(name, st, lay, " ".join(f"{m:.3f}" for m in c["accuracy"]), f"{c['mean_accuracy']:.4f}",
                              f"{c['mean_balanced_accuracy']:.4f}")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    console.print(table)
    out = args.out if args.out != REPORT else ROUNDS_REPORT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    console.print(f"wrote {out} in {report['seconds']:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--budgets", default="100,400")
    ap.add_argument("--datasets", default="parts,behaviour,letters")
    ap.add_argument("--rounds", action="store_true", help="active-learning rounds of --strategies (see the docstring)")
    ap.add_argument("--strategies", default="random,margin,typiclust", help="with --rounds")
    ap.add_argument("--jobs", type=int, default=2, help="with --rounds: worker processes")
    ap.add_argument("--out", type=Path, default=REPORT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    budgets = [int(b) for b in args.budgets.split(",")]
    sets = [s.strip() for s in args.datasets.split(",")]
    if "heldout" in sets:
        raise SystemExit("--datasets heldout: the held-out set is kept out of every choice of default")
    tmp = tempfile.TemporaryDirectory(prefix="alsql-pooling-")
    builders = {"parts": lambda: le.parts(False), "letters": lambda: le.letters(False),
                "behaviour": lambda: le.behaviour(False, Path(tmp.name)),
                "digits": lambda: le.digits(False), "maintenance": lambda: le.maintenance(False, Path(tmp.name))}
    for name in sets:
        if name not in builders:
            raise SystemExit(f"--datasets {name!r}: expected some of {', '.join(builders)}")
    if args.rounds:
        rounds(args, builders, sets)
        tmp.cleanup()
        return
    t0 = time.perf_counter()
    report = {"seeds": args.seeds, "budgets": budgets, "torch_threads": 1, "datasets": {}}
    for name in sets:
        ds = builders[name]()
        rows = {}
        for lay, make in layouts(ds).items():
            for budget in budgets:
                runs = [cell(ds, make, budget, seed) for seed in range(args.seeds)]
                rows.setdefault(lay, {})[str(budget)] = {
                    "balanced_accuracy": round(float(np.mean([r["balanced_accuracy"] for r in runs])), 4),
                    "rare_recall": round(float(np.mean([r["rare_recall"] for r in runs])), 4), "runs": runs}
                console.print(f"{name:10s} {lay:12s} {budget:4d} labels: balanced accuracy "
                              f"{rows[lay][str(budget)]['balanced_accuracy']:.3f}, rare recall "
                              f"{rows[lay][str(budget)]['rare_recall']:.3f}")
        report["datasets"][name] = {"note": ds.note, "layouts": rows}
    tmp.cleanup()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    table = Table(title="balanced accuracy (rare recall), random labels, from scratch, mean over seeds")
    table.add_column("dataset")
    table.add_column("layout")
    for b in budgets:
        table.add_column(f"{b} labels", justify="right")
    for name, d in report["datasets"].items():
        for lay, cells in d["layouts"].items():
            table.add_row(name, lay, *(f"{cells[str(b)]['balanced_accuracy']:.3f} ({cells[str(b)]['rare_recall']:.3f})"
                                      for b in budgets))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    console.print(f"wrote {args.out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
