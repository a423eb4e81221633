"""Rare-class items found per 100 labels, by strategy, on imbalanced pools.

The in-memory harness of ``benchmarks/label_efficiency.py`` (the same strategy functions as
``alsql select``, scoring the same ``predict_batch`` as ``alsql infer``, training the same
``fit``): each seed holds out a stratified 30 % test split; the rest is the pool. Every
strategy starts from the same random labels (the first budget) and adds labels round by
round; after each round a network is trained from scratch on the labels so far (with the
imbalance-aware loss ``alsql train`` uses by default, ``TrainConfig.class_weight``) and scores the pool.

Datasets (none of them is held out for a later check; no letters, part or workplace data here):

- ``digits-lt5``: scikit-learn's digits, classes 5..9 cut to a fifth in the pool (the rare classes).
- ``traffic``: the worked scenario's 2-s video segments (``alsql.pipelines.scenarios``), its
  three intersection types as common in the scenario, the third (t_junction) cut to a fifth in the pool.
- ``maintenance``: the worked scenario's 1-s machine sound clips, as imbalanced as generated
  (abnormal is the rare class).

The rare classes are those below the mean count per class in the pool.

Reported per dataset and strategy (mean ± std over seeds): rare items among the strategy's own
picks per 100 labels (the first random labels excluded) beside the pool's base rate, and the
balanced accuracy and rare-class recall on the test split after the last round.

    python benchmarks/rare_seeking.py [--seeds 3] [--strategies ...] [--datasets ...]
"""

from __future__ import annotations

import argparse
import json
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
from alsql.models.strategies import Candidates, get_strategy, score_columns  # noqa: E402

REPORT = Path(__file__).parent / "reports" / "rare_seeking.json"
STRATEGIES = ["random", "margin", "entropy", "typiclust", "badge", "balanced_margin", "class_balanced", "rare_boost",
              "similar"]
console = Console(highlight=False, width=200)


def split(y: np.ndarray, seed: int, n_classes: int, thin: dict[int, int]):
    """(pool, test) positions: a stratified 30 % test split; class c's pool cut to 1/thin[c]."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for c in range(n_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(0.3 * len(idx)))
        test.extend(idx[:n_test])
        rest = idx[n_test:]
        if c in thin:
            rest = rest[: max(1, len(rest) // thin[c])]
        pool.extend(rest)
    return np.sort(np.array(pool)), np.sort(np.array(test))


def train(ds: le.Dataset, x, y, seed: int):
    torch.manual_seed(seed)
    net = ds.make_net()
    batches, steps = le._batches(x, y, seed, ds.cfg.batch_size)
    fit(net, batches, None, ds.cfg, len(ds.classes), steps_per_epoch=steps)  # the loss alsql train uses by default
    return net


def run_arm(ds: le.Dataset, thin: dict[int, int], strategy: str, seed: int) -> dict:
    y = ds.y.numpy()
    pool, test = split(y, seed, len(ds.classes), thin)
    counts = np.bincount(y[pool], minlength=len(ds.classes))
    rare = np.flatnonzero(counts < counts.mean())
    rng = np.random.default_rng(seed)
    srng = np.random.default_rng(seed + 7)
    s = get_strategy(strategy)
    labeled = list(rng.choice(pool, ds.budgets[0], replace=False))
    picked: list[int] = []
    for i in range(len(ds.budgets)):
        lab = np.array(sorted(labeled))
        net = train(ds, ds.x[lab], ds.y[lab], seed * 100 + i)
        if i + 1 == len(ds.budgets):
            break
        unl = np.setdiff1d(pool, lab)
        sc = le.score(net, ds.x[unl], 0)
        cols = score_columns(sc["probs"])
        lab_y = y[lab]
        lab_emb = le.score(net, ds.x[lab], 0)["embeddings"]
        cands = Candidates(
            unl.astype(np.int64), sc["probs"], sc["embeddings"],
            {k: cols[k] for k in ("class_id", "confidence", "margin", "entropy")},
            labeled=(lambda e=lab_emb: iter([e])), labeled_count=len(lab),
            labeled_counts=np.bincount(lab_y, minlength=len(ds.classes)),
            labeled_by_class=(lambda cl, e=lab_emb, ly=lab_y: iter([e[np.isin(ly, cl)]])),
        )
        idx, _ = s.select(cands, ds.budgets[i + 1] - len(lab), srng)
        new = unl[idx].tolist()
        picked += new
        labeled += new
    pred = le.score(net, ds.x[test], 0)["probs"].argmax(1)
    cm = confusion_matrix(y[test], pred, len(ds.classes))
    rec = per_class_recall(cm)
    found = int(np.isin(y[picked], rare).sum())
    return {"picked": len(picked), "rare_found": found, "rare_per_100": 100.0 * found / max(1, len(picked)),
            "base_per_100": 100.0 * counts[rare].sum() / counts.sum(),
            "balanced_accuracy": float(balanced_accuracy(cm)), "rare_recall": float(np.nanmean(rec[rare])),
            "rare_classes": [ds.classes[c] for c in rare]}


def datasets(names: list[str], data: Path) -> dict[str, tuple[le.Dataset, dict[int, int]]]:
    out = {}
    for n in names:
        if n == "digits-lt5":
            ds = le.digits(False, budgets=[20, 40, 60, 100])
            ds.name, ds.note = n, "scikit-learn digits, classes 5-9 at a fifth of the pool"
            out[n] = (ds, {c: 5 for c in range(5, 10)})
        elif n == "traffic":
            ds = le.traffic(False, data)
            ds.budgets = [6, 12, 24, 36]
            ds.note += ", t_junction at a fifth of the pool"
            out[n] = (ds, {2: 5})
        elif n == "maintenance":
            ds = le.maintenance(False, data)
            ds.budgets = [6, 12, 24, 36]
            out[n] = (ds, {})
        else:
            raise SystemExit(f"--datasets {n!r}: expected digits-lt5, traffic, maintenance")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--datasets", default="digits-lt5,traffic,maintenance")
    ap.add_argument("--out", default=str(REPORT))
    ap.add_argument("--merge", action="store_true", help="keep the other datasets of an existing --out report")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = [s.strip() for s in args.strategies.split(",")]
    for n in names:
        get_strategy(n)
    t0 = time.perf_counter()
    report: dict = {"seeds": args.seeds, "strategies": names, "datasets": {}}
    out_path = Path(args.out)
    if args.merge and out_path.exists():
        report["datasets"] = json.loads(out_path.read_text())["datasets"]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="alsql-rare-") as tmp:
        sets = datasets([d.strip() for d in args.datasets.split(",")], Path(tmp))
        for dname, (ds, thin) in sets.items():
            rows: dict[str, list[dict]] = {n: [] for n in names}
            for seed in range(args.seeds):
                for n in names:
                    t = time.perf_counter()
                    rows[n].append(run_arm(ds, thin, n, seed))
                    r = rows[n][-1]
                    console.print(f"{dname:12s} seed {seed} {n:16s} rare {r['rare_found']:3d}/{r['picked']} "
                                  f"bal.acc {r['balanced_accuracy']:.3f} ({time.perf_counter() - t:.1f} s)")
            res_ = {"budgets": ds.budgets, "note": ds.note, "rare_classes": rows[names[0]][0]["rare_classes"],
                   "base_per_100": round(float(np.mean([r["base_per_100"] for r in rows[names[0]]])), 2),
                   "arms": {}}
            for n, res in rows.items():
                arm = {}
                for key in ("rare_per_100", "balanced_accuracy", "rare_recall"):
                    v = np.array([r[key] for r in res], dtype=float)
                    arm[key] = [round(float(v.mean()), 4), round(float(v.std()), 4)]
                arm["per_seed"] = res
                res_["arms"][n] = arm
            report["datasets"][dname] = res_
            out_path.write_text(json.dumps(report, indent=1))  # each dataset as it ends
    report["seconds"] = round(time.perf_counter() - t0, 1)
    rand = {d: v["arms"].get("random", {}).get("rare_per_100", [None])[0] for d, v in report["datasets"].items()}
    table = Table("dataset", "strategy", "rare per 100 picks", "x random", "balanced acc.", "rare recall",
                  title=f"rare-class items found per 100 labels ({args.seeds} seeds, mean ± std)")
    for d, v in report["datasets"].items():
        table.add_row(d, "(base rate)", f"{v['base_per_100']:.1f}", "", "", "", end_section=False)
        for n, a in v["arms"].items():
            x = a["rare_per_100"][0] / rand[d] if rand[d] else float("nan")
            table.add_row("", n, "{:.1f} ± {:.1f}".format(*a["rare_per_100"]), f"{x:.2f}",
                          "{:.3f} ± {:.3f}".format(*a["balanced_accuracy"]),
                          "{:.3f} ± {:.3f}".format(*a["rare_recall"]))
        table.add_section()
    console.print(table)
    out_path.write_text(json.dumps(report, indent=1))
    console.print(f"wrote {out_path} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
