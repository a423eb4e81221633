"""How long alsql train should train on a few hundred labels: the --min-steps default, measured.

On small label sets ``alsql train`` raises ``--epochs`` until the run makes ``--min-steps``
optimizer steps (at most 300 epochs, ``alsql.models.fit.plan_epochs``). This benchmark trains the
networks ``alsql train`` builds for the rare-class image sets of ``label_efficiency.py`` (the part
images with small defects, the 20 letters with five rare) and for scikit-learn's digits, with
``alsql train``'s schedule (batch 64, AdamW 2e-3, cosine, logit-adjusted loss, the flips of
colour images) on random labels at 100, 200 and 400 labels, for several ``--min-steps``:
5 seeds (the labels and the test split) x 3 starts (the network's initial weights) each.
It reports the test split's balanced accuracy: the mean over seeds and starts, its standard
deviation over seeds (of the mean over starts) and over starts (within a seed, averaged), and
the seconds per training. The held-out pump sounds of ``label_efficiency.py`` stay out of it.

Run: ``python benchmarks/train_length.py [--quick] [--jobs 2]`` (report
``benchmarks/reports/train_length.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import label_efficiency as le  # noqa: E402

from alsql.models.metrics import balanced_accuracy, confusion_matrix  # noqa: E402

REPORTS = Path(__file__).parent / "reports"
console = Console(highlight=False, width=200)
_DATA: dict[str, le.Dataset] = {}


def dataset(name: str) -> le.Dataset:
    """The dataset ``name`` as ``label_efficiency.py`` builds it, with alsql train's schedule."""
    if name not in _DATA:
        ds = le.digits(False) if name == "digits" else getattr(le, name)(False)
        ds.cfg = dataclasses.replace(le.ALSQL_SCHEDULE, min_steps=None)
        _DATA[name] = ds
    return _DATA[name]


def task(args: tuple[str, int, int, int, int]) -> dict:
    """Train one network: dataset, seed (labels, test split), budget, --min-steps, start."""
    name, seed, budget, min_steps, start = args
    torch.set_num_threads(1)
    ds = dataset(name)
    y = ds.y.numpy()
    pool, test = le.split(y, seed, len(ds.classes), ds.rare, False)
    lab = np.random.default_rng(seed).permutation(pool)[:budget]  # nested: 100 of 200 of 400
    cfg = dataclasses.replace(ds.cfg, min_steps=min_steps)
    torch.manual_seed(seed * 1000 + start)
    net = ds.make_net()
    batches, steps = le._batches(ds.x[lab], ds.y[lab], seed * 1000 + start, cfg.batch_size)
    t0 = time.perf_counter()
    le.fit(net, batches, None, cfg, len(ds.classes), steps_per_epoch=steps)
    seconds = time.perf_counter() - t0
    probs = le.score(net, ds.x[test], 0)["probs"]
    cm = confusion_matrix(y[test], probs.argmax(1), len(ds.classes))
    return {"dataset": name, "seed": seed, "labels": budget, "min_steps": min_steps, "start": start,
            "balanced_accuracy": balanced_accuracy(cm), "seconds": round(seconds, 3)}


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["dataset"], r["labels"], r["min_steps"]) for r in rows})
    for name, labels, steps in keys:
        cell = [r for r in rows if (r["dataset"], r["labels"], r["min_steps"]) == (name, labels, steps)]
        seeds = sorted({r["seed"] for r in cell})
        by_seed = [[r["balanced_accuracy"] for r in cell if r["seed"] == s] for s in seeds]
        means = [statistics.fmean(v) for v in by_seed]
        out.append({"dataset": name, "labels": labels, "min_steps": steps,
                    "balanced_accuracy": round(statistics.fmean(means), 4),
                    "std_over_seeds": round(statistics.pstdev(means), 4),
                    "std_over_starts": round(statistics.fmean(statistics.pstdev(v) for v in by_seed), 4),
                    "seconds_median": round(statistics.median(r["seconds"] for r in cell), 2),
                    "runs": len(cell)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="parts,letters,digits")
    ap.add_argument("--budgets", default="100,200,400")
    ap.add_argument("--min-steps", default="200,600,1200", help="comma-separated --min-steps to compare")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--starts", type=int, default=3, help="initial weights per seed")
    ap.add_argument("--quick", action="store_true", help="2 seeds x 2 starts")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", default=str(REPORTS / "train_length.json"))
    args = ap.parse_args()
    seeds, starts = (2, 2) if args.quick else (args.seeds, args.starts)
    names = [s.strip() for s in args.datasets.split(",")]
    budgets = [int(b) for b in args.budgets.split(",")]
    lengths = [int(s) for s in args.min_steps.split(",")]
    tasks = [(n, s, b, m, k) for n in names for s in range(seeds) for b in budgets for m in lengths
             for k in range(starts)]
    t0 = time.perf_counter()
    with get_context("fork").Pool(args.jobs) as pool:
        rows = pool.map(task, tasks, chunksize=1)
    summary = summarize(rows)
    table = Table(title="balanced accuracy on the test split, random labels (mean over seeds x starts)")
    for col in ("dataset", "labels", "--min-steps", "balanced acc.", "std seeds", "std starts", "s / training"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for r in summary:
        table.add_row(r["dataset"], str(r["labels"]), str(r["min_steps"]), f"{r['balanced_accuracy']:.3f}",
                      f"{r['std_over_seeds']:.3f}", f"{r['std_over_starts']:.3f}", f"{r['seconds_median']:.1f}")
    console.print(table)
    report = {"config": {"seeds": seeds, "starts": starts, "budgets": budgets, "min_steps": lengths,
                         "schedule": dataclasses.asdict(le.ALSQL_SCHEDULE) | {"min_steps": "varied"},
                         "torch_threads": 1, "jobs": args.jobs, "labels": "random, nested per seed",
                         "networks": {n: type(dataset(n).make_net()).__name__ for n in names}},
              "summary": summary, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).write_text(json.dumps(report, indent=1))
    console.print(f"report: {args.out}")


if __name__ == "__main__":
    main()
