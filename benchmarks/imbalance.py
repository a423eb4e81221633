"""Imbalance-aware training: logit adjustment vs class-weighted cross-entropy vs class-balanced sampling vs plain.

Two problems, each trained through ``alsql.models.fit.fit`` (the loop ``alsql train`` runs)
on in-memory tensors with the ``cnn`` network, 3 seeds:

- ``toy95``: 8x8 grey images, 5 % of them (the minority) brighter on average, the two
  brightness distributions overlapping (``toy95``). 400 training images; a test set of 400
  (half each).
- ``digits``: scikit-learn's digits with classes 5..9 made 5x rarer in the training
  labels (300 labels); the test set is a stratified 30 % hold-out (every class as common).

Arms: ``none`` (plain cross-entropy), ``weighted`` (scikit-learn's ``class_weight=
"balanced"`` weights on the loss), ``sampling`` (plain loss, each epoch's batches drawn with
replacement with probability 1 / n_c) and ``adjusted`` (logit-adjusted cross-entropy, Menon et
al. 2021: log of each class's share of the labels added to the logits in training; what
``alsql train`` does by default). The network is the ``cnn`` with the pooling ``alsql train``
gives 8-px images (``layout_for``).
Every arm keeps the checkpoint of the best evaluation balanced accuracy on the test set.
Reports the mean and std balanced accuracy and minority recall per arm.

    python benchmarks/imbalance.py [--seeds 3]

``--rounds``: the loss in active-learning rounds as ``label_efficiency.py`` runs them
(``run_arm``: its budgets, networks, training settings and test split, from scratch) on its
rare-class sets, logit adjustment against the class weights: balanced accuracy per budget, mean
over seeds, the seeds whose model predicts a single class, and the rare items among the labels.
The held-out set is never read. Writes ``benchmarks/reports/imbalance_rounds.json``.

    python benchmarks/imbalance.py --rounds --datasets behaviour,parts,letters --strategies random,typiclust --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from alsql.models.fit import TrainConfig, fit
from alsql.models.metrics import balanced_accuracy, per_class_recall
from alsql.models.networks import build_network, layout_for

REPORT = Path(__file__).parent / "reports" / "imbalance.json"
ROUNDS_REPORT = Path(__file__).parent / "reports" / "imbalance_rounds.json"
ROUND_LOSSES = ("logit_adjust", "balanced")
_SETS: dict = {}
ARMS = ("none", "weighted", "sampling", "adjusted")
LOSS = {"none": "none", "weighted": "balanced", "sampling": "none", "adjusted": "logit_adjust"}


def toy95(seed: int, n: int = 400, minority: float = 0.05, sigma: float = 0.16):
    """``(x (n,1,8,8) float32, y (n,) int64)``: grey images whose brightness is drawn from
    N(0.4, sigma) (class 0) or N(0.6, sigma) (class 1, a ``minority`` share), plus pixel noise.

    The classes overlap: under a 95/5 prior the most accurate rule almost never says 1, while
    the balanced rule (threshold 0.5) finds about 3/4 of the minority."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[: max(1, int(round(n * minority)))] = 1
    rng.shuffle(y)
    level = rng.normal(np.where(y == 1, 0.6, 0.4), sigma)
    x = level[:, None, None, None] + rng.normal(0, 0.05, size=(n, 1, 8, 8))
    return torch.tensor(np.clip(x, 0, 1), dtype=torch.float32), torch.tensor(y)


def digits(seed: int, labels: int = 300, rare=(5, 6, 7, 8, 9), factor: int = 5):
    """``(x_train, y_train, x_test, y_test)``: classes ``rare`` ``factor``x rarer in training."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.int64)
    rng = np.random.default_rng(seed)
    train, test = [], []
    weight = np.array([1.0 / factor if c in rare else 1.0 for c in range(10)])
    per_class = np.round(labels * weight / weight.sum()).astype(int)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(d.target == c))
        n_test = int(round(0.3 * len(idx)))
        test.extend(idx[:n_test])
        train.extend(idx[n_test : n_test + per_class[c]])
    train, test = np.array(train), np.array(test)
    return x[train], y[train], x[test], y[test]


def _batches(x, y, seed: int, batch_size: int, balanced: bool):
    n = len(y)
    counts = torch.bincount(y, minlength=int(y.max()) + 1).double()
    p = (1.0 / counts[y]) / (1.0 / counts[y]).sum()

    def batches(epoch):
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.multinomial(p, n, replacement=True, generator=g) if balanced else torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            j = order[s : s + batch_size]
            yield x[j], y[j]

    return batches, -(-n // batch_size)


def run_arm(arm: str, cfg: TrainConfig, data, num_classes: int, seed: int) -> dict:
    xt, yt, xe, ye = data
    torch.manual_seed(seed)
    net = build_network("cnn", num_classes, 1, layout_for("image", 8))
    cfg = replace(cfg, seed=seed, device="cpu", class_weight=LOSS[arm])
    batches, steps = _batches(xt, yt, seed, cfg.batch_size, balanced=arm == "sampling")
    res = fit(net, batches, lambda: [(xe, ye)], cfg, num_classes, steps)
    rec = per_class_recall(res.confusion)
    return {"balanced_accuracy": balanced_accuracy(res.confusion), "recall": [float(r) for r in rec]}


def round_task(task: tuple[str, str, str, int]) -> tuple[str, str, str, int, list[dict]]:
    """One strategy's rounds on one rare-class set and seed, trained with one loss."""
    import label_efficiency as le

    name, loss, strategy, seed = task
    torch.set_num_threads(1)
    ds = dataclasses.replace(_SETS[name])
    ds.cfg = replace(ds.cfg, class_weight=loss)
    return name, loss, strategy, seed, le.run_arm(ds, strategy, seed, None)


def rounds(args) -> None:
    import multiprocessing as mp
    import sys
    import tempfile
    import time

    sys.path.insert(0, str(Path(__file__).parent))
    import label_efficiency as le

    sets = [s.strip() for s in args.datasets.split(",")]
    if "heldout" in sets:
        raise SystemExit("--datasets heldout: the held-out set is kept out of every choice of default")
    strategies = [s.strip() for s in args.strategies.split(",")]
    tmp = tempfile.TemporaryDirectory(prefix="alsql-imbalance-")
    builders = {"behaviour": lambda: le.behaviour(False, Path(tmp.name)), "parts": lambda: le.parts(False),
                "letters": lambda: le.letters(False)}
    t0 = time.perf_counter()
    for name in sets:
        if name not in builders:
            raise SystemExit(f"--datasets {name!r}: expected some of {', '.join(builders)}")
        _SETS[name] = builders[name]()
    tasks = [(n, loss, st, seed) for n in sets for loss in ROUND_LOSSES for st in strategies
             for seed in range(args.seeds)]
    done = []
    console = Console(width=200)
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for r in pool.imap_unordered(round_task, tasks):
            done.append(r)
            console.print(f"{r[0]:10s} {r[1]:12s} {r[2]:10s} seed {r[3]}: balanced accuracy "
                          + " ".join(f"{row['balanced_accuracy']:.3f}" for row in r[4]))
    tmp.cleanup()
    report = {"mode": "rounds (label_efficiency.run_arm, from scratch)", "seeds": args.seeds, "strategies": strategies,
              "losses": list(ROUND_LOSSES), "torch_threads": 1, "jobs": args.jobs, "datasets": {}}
    table = Table("dataset", "strategy", "loss", "balanced accuracy by budget", "single-class seeds", "rare per 100",
                  title="the loss in rounds from scratch, mean over seeds")
    for name in sets:
        d = report["datasets"][name] = {"note": _SETS[name].note, "budgets": _SETS[name].budgets, "by_strategy": {}}
        for st in strategies:
            for loss in ROUND_LOSSES:
                runs = [r[4] for r in done if r[0] == name and r[1] == loss and r[2] == st]
                bal = np.array([[row["balanced_accuracy"] for row in rows] for rows in runs])
                single = np.array([[row["single_class"] for row in rows] for rows in runs]).sum(0)
                rare = np.array([[row["rare_per_100"] for row in rows] for rows in runs])
                c = d["by_strategy"].setdefault(st, {})[loss] = {
                    "balanced_accuracy": bal.mean(0).round(4).tolist(), "std": bal.std(0).round(4).tolist(),
                    "single_class_seeds": single.tolist(), "rare_per_100": rare.mean(0).round(2).tolist(),
                    "seeds": len(runs)}
                table.add_row(name, st, loss, " ".join(f"{m:.3f}" for m in c["balanced_accuracy"]),
                              str(c["single_class_seeds"]), " ".join(f"{m:.1f}" for m in c["rare_per_100"]))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    console.print(table)
    ROUNDS_REPORT.parent.mkdir(parents=True, exist_ok=True)
    ROUNDS_REPORT.write_text(json.dumps(report, indent=1))
    print(f"report: {ROUNDS_REPORT} ({report['seconds']:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", action="store_true", help="the loss in rounds on the rare-class sets (see the docstring)")
    ap.add_argument("--datasets", default="behaviour,parts,letters", help="with --rounds")
    ap.add_argument("--strategies", default="random,typiclust", help="with --rounds")
    ap.add_argument("--jobs", type=int, default=2, help="with --rounds: worker processes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.rounds:
        rounds(args)
        return
    cfg = TrainConfig(epochs=10, min_steps=100, batch_size=32, patience=1000)
    report: dict = {"seeds": args.seeds, "config": cfg.as_params(), "problems": {}}
    problems = {
        "toy95": (lambda s: (*toy95(s), *toy95(s + 100, minority=0.5)), 2, [1]),
        "digits_rare5x": (digits, 10, [5, 6, 7, 8, 9]),
    }
    console = Console()
    table = Table("problem", "arm", "balanced accuracy", "minority recall", title="imbalance-aware training")
    for name, (make, k, rare) in problems.items():
        rows = {a: [] for a in ARMS}
        for seed in range(args.seeds):
            data = make(seed)
            for arm in ARMS:
                rows[arm].append(run_arm(arm, cfg, data, k, seed))
        out = {}
        for arm, res in rows.items():
            bal = [r["balanced_accuracy"] for r in res]
            minority = [float(np.mean([r["recall"][c] for c in rare])) for r in res]
            out[arm] = {"balanced_accuracy": [round(float(np.mean(bal)), 4), round(float(np.std(bal)), 4)],
                        "minority_recall": [round(float(np.mean(minority)), 4), round(float(np.std(minority)), 4)],
                        "per_seed": res}
            table.add_row(name, arm, "{:.3f} ± {:.3f}".format(*out[arm]["balanced_accuracy"]),
                          "{:.3f} ± {:.3f}".format(*out[arm]["minority_recall"]))
        report["problems"][name] = out
    console.print(table)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1))
    console.print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
