"""Label efficiency of the active-learning strategies on scikit-learn's digits.

For every seed: a stratified 30 % test split is held out; the rest is the pool. Each
strategy starts from the same 20 random labels and adds labels round by round up
to 400 (budgets below); after each round a fresh network is trained on the labels so
far and scored on the test split. Selection calls the same strategy functions as
``alsql select`` (``alsql.models.strategies``: the in-memory ordering of the
scalar ones is the one their SQL ``ORDER BY`` reproduces), and scoring the same
``predict_batch`` as ``alsql infer``. Training reads in-memory tensors (this
measures strategies, not loaders).

Reports per strategy and budget the mean and std accuracy over seeds, the labels each
strategy needs to reach random's mean accuracy at the largest budget (linear
interpolation on the mean curve), and for the long-tail scenario (classes 5..9 cut to
a tenth of the pool) the mean recall of those rare classes.

    python benchmarks/label_efficiency.py [--seeds 5] [--strategies all] [--quick]

Goal (issue 4): the best of margin / entropy needs at most 60 % of random's labels.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from alsql.models.fit import TrainConfig, fit
from alsql.models.metrics import confusion_matrix, labels_to_reach, per_class_recall
from alsql.models.networks import SmallCNN
from alsql.models.predict import predict_batch
from alsql.models.strategies import Candidates, get_strategy, score_columns, strategy_names

REPORTS = Path(__file__).parent / "reports"
BUDGETS = [20, 40, 60, 80, 100, 140, 180, 220, 260, 300, 350, 400]
LONGTAIL_BUDGETS = [20, 40, 60, 80, 100, 140, 180, 220]
RARE = list(range(5, 10))
console = Console(highlight=False, width=200)


def load_digits_tensors():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    return x, torch.tensor(d.target, dtype=torch.int64)


def split(y: np.ndarray, seed: int, longtail: bool):
    """(pool positions, test positions): stratified 30 % test; long tail thins the pool."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(0.3 * len(idx)))
        test.extend(idx[:n_test])
        rest = idx[n_test:]
        if longtail and c in RARE:
            rest = rest[: max(1, len(rest) // 10)]
        pool.extend(rest)
    return np.sort(np.array(pool)), np.sort(np.array(test))


def train(x, y, seed: int, cfg: TrainConfig) -> SmallCNN:
    torch.manual_seed(seed)
    net = SmallCNN(10, 1, width=16)
    n = len(y)

    def batches(epoch):
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, cfg.batch_size):
            j = perm[s : s + cfg.batch_size]
            yield x[j], y[j]

    fit(net, batches, None, cfg, 10, steps_per_epoch=-(-n // cfg.batch_size))
    return net


def score(net, x, mc: int) -> dict[str, np.ndarray]:
    parts = [predict_batch(net, x[s : s + 1024], mc) for s in range(0, len(x), 1024)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def run_one(strategy: str, seed: int, x, y, budgets, longtail: bool, cfg: TrainConfig) -> list[dict]:
    pool, test = split(y.numpy(), seed, longtail)
    rng = np.random.default_rng(seed)
    labeled = list(rng.choice(pool, budgets[0], replace=False))  # same start for every strategy
    srng = np.random.default_rng(seed + 7)
    s = get_strategy(strategy)
    out = []
    for i, budget in enumerate(budgets):
        lab = np.array(sorted(labeled))
        net = train(x[lab], y[lab], seed * 100 + i, cfg)
        pred = score(net, x[test], 0)["probs"].argmax(1)
        cm = confusion_matrix(y[test].numpy(), pred, 10)
        rec = per_class_recall(cm)
        out.append({"labels": len(lab), "accuracy": float(np.trace(cm) / cm.sum()),
                    "rare_recall": float(np.nanmean(rec[RARE]))})
        if i + 1 == len(budgets):
            break
        unl = np.setdiff1d(pool, lab)
        sc = score(net, x[unl], 10 if strategy == "bald" else 0)
        cols = score_columns(sc["probs"])
        cands = Candidates(
            unl.astype(np.int64), sc["probs"], sc["embeddings"],
            {"confidence": cols["confidence"], "margin": cols["margin"], "entropy": cols["entropy"],
             "bald": sc.get("bald")},
            labeled=(lambda lab=lab: iter([score(net, x[lab], 0)["embeddings"]])), labeled_count=len(lab),
        )
        idx, _ = s.select(cands, budgets[i + 1] - len(lab), srng)
        labeled.extend(unl[idx].tolist())
    return out


def summarize(runs: dict[str, list[list[dict]]], key: str) -> dict:
    table = {}
    for name, per_seed in runs.items():
        arr = np.array([[r[key] for r in seed_runs] for seed_runs in per_seed])
        table[name] = {
            "labels": [r["labels"] for r in per_seed[0]],
            "mean": arr.mean(axis=0).round(4).tolist(),
            "std": arr.std(axis=0).round(4).tolist(),
        }
    return table


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("balanced", "accuracy", "test accuracy")]
    if "longtail" in report["scenarios"]:
        panels.append(("longtail", "rare_recall", "rare-class recall (long tail)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (scen, key, title) in zip(axes[0], panels):
        for name, curve in report["scenarios"][scen][key].items():
            m, s = np.array(curve["mean"]), np.array(curve["std"])
            style = dict(color="black", lw=2.2, ls="--") if name == "random" else dict(lw=1.3)
            ax.plot(curve["labels"], m, label=name, **style)
            ax.fill_between(curve["labels"], m - s, m + s, alpha=0.12, color=style.get("color"))
        ax.set_xlabel("labels")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strategies", default="all", help="comma-separated names, or all")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 4 budgets, shorter training")
    ap.add_argument("--no-longtail", action="store_true")
    ap.add_argument("--out", default=str(REPORTS / "label_efficiency.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = strategy_names() if args.strategies == "all" else [s.strip() for s in args.strategies.split(",")]
    for n in names:
        get_strategy(n)
    if "random" not in names:
        names.insert(0, "random")
    names = ["random"] + [n for n in names if n != "random"]
    seeds = 2 if args.quick else args.seeds
    budgets = [20, 60, 120, 200] if args.quick else BUDGETS
    lt_budgets = [20, 60, 120] if args.quick else LONGTAIL_BUDGETS
    cfg = TrainConfig(epochs=10, min_steps=60 if args.quick else 150, batch_size=32, patience=1000, lr=3e-3)
    x, y = load_digits_tensors()
    report = {"config": {"seeds": seeds, "budgets": budgets, "longtail_budgets": lt_budgets,
                         "strategies": names, "network": "SmallCNN(width=16)", "train": cfg.as_params(),
                         "test_split": 0.3, "rare_classes": RARE, "torch_threads": 1},
              "scenarios": {}}
    t0 = time.perf_counter()
    scenarios = [("balanced", budgets, False)] + ([] if args.no_longtail else [("longtail", lt_budgets, True)])
    for scen, bud, lt in scenarios:
        runs: dict[str, list] = {}
        for name in names:
            t = time.perf_counter()
            runs[name] = [run_one(name, seed, x, y, bud, lt, cfg) for seed in range(seeds)]
            console.print(f"{scen:9s} {name:17s} {time.perf_counter() - t:6.1f} s "
                          f"acc@{bud[-1]} {np.mean([r[-1]['accuracy'] for r in runs[name]]):.4f}")
        report["scenarios"][scen] = {"accuracy": summarize(runs, "accuracy"),
                                     "rare_recall": summarize(runs, "rare_recall")}
    bal = report["scenarios"]["balanced"]["accuracy"]
    target = bal["random"]["mean"][-1]
    need = {n: labels_to_reach(c["labels"], c["mean"], target) for n, c in bal.items()}
    report["target_accuracy"] = target
    report["labels_to_reach_random_at_max"] = need
    report["fraction_of_random_labels"] = {n: (None if v is None else round(v / budgets[-1], 4)) for n, v in need.items()}
    best = [need[n] for n in ("margin", "entropy") if n in need and need[n] is not None]
    report["goal"] = {
        "text": "best of margin/entropy needs <= 60% of random's labels",
        "best_fraction": round(min(best) / budgets[-1], 4) if best else None,
        "met": bool(best) and min(best) <= 0.6 * budgets[-1],
    }
    report["seconds"] = round(time.perf_counter() - t0, 1)

    tab = Table(title=f"digits, {seeds} seeds: accuracy mean ± std by labels")
    tab.add_column("strategy")
    for b in budgets:
        tab.add_column(str(b), justify="right")
    tab.add_column(f"labels to {target:.3f}", justify="right")
    for n, c in bal.items():
        cells = [f"{m:.3f}±{s:.3f}" for m, s in zip(c["mean"], c["std"])]
        tab.add_row(n, *cells, "-" if need[n] is None else f"{need[n]:.0f}")
    console.print(tab)
    if "longtail" in report["scenarios"]:
        lt_tab = Table(title="long tail (classes 5-9 at a tenth): rare-class recall mean ± std")
        lt_tab.add_column("strategy")
        for b in lt_budgets:
            lt_tab.add_column(str(b), justify="right")
        for n, c in report["scenarios"]["longtail"]["rare_recall"].items():
            lt_tab.add_row(n, *[f"{m:.3f}±{s:.3f}" for m, s in zip(c["mean"], c["std"])])
        console.print(lt_tab)
    console.print(f"goal: {report['goal']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(report, png)
    report["plot"] = png.name
    out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
