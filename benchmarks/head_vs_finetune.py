"""Head on the frozen encoder vs fine-tuning vs random-from-scratch, and the measured choice.

The datasets of ``benchmarks/label_efficiency.py`` (digits, traffic, maintenance: loaded by
its builders, the same networks and training settings). For every seed: the same stratified
30 % test split, an encoder pretrained (SimCLR, as ``alsql pretrain``) on the rest (the pool,
unlabeled), and random labels drawn from the pool in one seeded order, so each budget's
labels contain the previous budget's. At each budget three networks are trained on the
labels and scored on the test split:

- ``head``: a linear head on the frozen encoder (``alsql train --head frozen``: the encoder
  loaded and frozen, ``head_config``'s learning rate, the same ``fit``);
- ``finetune``: the whole network fine-tuned from the encoder (``--head finetune``);
- ``random``: from random weights (``--init random``);

and ``alsql.models.choose.measure_choice`` picks one of the three from the labels alone
(cross-validation; the test split is never read). Reported: accuracy and balanced accuracy
per arm and budget (mean and std over seeds), the same for the arm the choice picked
(``chosen``) and for the old fixed rule (``rule15``: frozen under 15 labels per class, else
fine-tune); labels each arm needs to reach random-from-scratch's mean accuracy at the
largest budget (interpolated on the mean curve, and per seed); how often the choice picks
the best arm on the test split (within 0.01 balanced accuracy) and its mean regret; the
fine-tune minus head difference per budget (where fine-tuning leads by more than a standard
deviation: the switching point); the probe warnings.

    python benchmarks/head_vs_finetune.py [--seeds 5] [--datasets digits,traffic,maintenance]

Over the costly arms' cap (``choose.COSTLY_MAX_LABELS``, 400 labels) the choice is measured on a
stratified sample of 400 labels; the part images with small defects (800 labels) and the 20
letters (1,200 labels) of ``label_efficiency.py``'s rare-class sets check it, beside the
decision the probes alone make on all the labels (``probes_only``: what ``alsql train`` did over
the cap before, and still does when the labeled items are not held in memory):

    python benchmarks/head_vs_finetune.py --seeds 3 --datasets parts,letters --out benchmarks/reports/head_vs_finetune_over_cap.json

That report was made before ``alsql train`` flipped colour images (the parts now train with the flips)
and with the letters' encoder pretrained for 300 steps at batch 128 (``label_efficiency.letters`` now
pretrains it as ``alsql pretrain`` does by default); a rerun measures both as they are now.
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

import label_efficiency as le  # noqa: E402  (the datasets, split, pretraining and training of that benchmark)

from alsql.models.choose import (  # noqa: E402
    COSTLY_MAX_LABELS, HEAD_MARGIN, TIE, measure_choice, pick_arm, probe_warning)
from alsql.models.encoders import choose_head, head_config, start_from_encoder  # noqa: E402
from alsql.models.fit import fit  # noqa: E402
from alsql.models.metrics import balanced_accuracy, confusion_matrix, labels_to_reach  # noqa: E402

REPORTS = Path(__file__).parent / "reports"
# traffic reaches 1.000 for every arm from 24 labels (measured on seed 0 up to 96): larger budgets tell nothing
BUDGETS = {"digits": [20, 40, 60, 100, 200, 400], "traffic": [6, 12, 24], "maintenance": [6, 12, 24, 48, 96],
           # over the costly arms' cap (400 labels): measured on a stratified sample of 400 (``--out
           # head_vs_finetune_over_cap.json``), beside the probes-only decision made there before
           "parts": [800], "letters": [1200]}
ARMS = ("head", "finetune", "random")
console = Console(highlight=False, width=200)


def train_from(ds, encoder, x, y, seed: int, mode: str):
    torch.manual_seed(seed)
    net = ds.make_net()
    if mode != "random":
        start_from_encoder(net, encoder, "frozen" if mode == "head" else "finetune")
    cfg = head_config(ds.cfg, "frozen" if mode == "head" else None)
    batches, steps = le._batches(x, y, seed, cfg.batch_size)
    fit(net, batches, None, cfg, len(ds.classes), steps_per_epoch=steps)
    net.freeze_encoder(False)
    return net


def test_scores(ds, net, test) -> tuple[float, float]:
    pred = le.score(net, ds.x[test], 0)["probs"].argmax(1)
    cm = confusion_matrix(ds.y.numpy()[test], pred, len(ds.classes))
    return float(np.trace(cm) / cm.sum()), balanced_accuracy(cm)


def run_seed(ds, seed: int, budgets: list[int]) -> dict:
    y_np = ds.y.numpy()
    pool, test = le.split(y_np, seed, len(ds.classes), [], False)
    t0 = time.perf_counter()
    encoder, info = le.pretrain(ds, ds.x[pool], seed)
    order = np.random.default_rng(seed).permutation(pool)
    rows = []
    for i, b in enumerate(b for b in budgets if b <= len(pool)):
        lab = np.sort(order[:b])
        x, y = ds.x[lab], ds.y[lab]
        row = {"labels": b}
        for arm in ARMS:
            t = time.perf_counter()
            net = train_from(ds, encoder, x, y, seed * 100 + i, arm)
            acc, bal = test_scores(ds, net, test)
            row[arm] = {"accuracy": round(acc, 4), "balanced_accuracy": round(bal, 4),
                        "train_s": round(time.perf_counter() - t, 2)}
        c = measure_choice(y, len(ds.classes), x=x, make_net=ds.make_net, encoder_state=encoder, cfg=ds.cfg,
                           seed=seed * 100 + i, encoder_name=f"the {ds.name} encoder (seed {seed})")
        rule = "head" if choose_head("auto", b, len(ds.classes))[0] == "frozen" else "finetune"
        if b > COSTLY_MAX_LABELS:  # the decision over the cap from the probes alone (all labels; items not in memory)
            p = le.probe_choice(ds, encoder, x, y, seed * 100 + i)
            row["probes_only"] = {"mode": p.mode, "cv": p.scores, "why": p.why}
        row["choice"] = {"mode": c.mode, "cv": c.scores, "method": c.method, "warning": c.warning,
                         "seconds": c.seconds}
        row["rule15"] = rule
        rows.append(row)
        console.print(f"{ds.name} seed {seed} {b:4d} labels: " + ", ".join(
            f"{a} {row[a]['balanced_accuracy']:.3f}" for a in ARMS)
                      + f" | cv {c.scores} -> {c.mode} ({c.seconds:.1f} s)")
    return {"dataset": ds.name, "seed": seed, "pretrain": info, "rows": rows,
            "seconds": round(time.perf_counter() - t0, 1)}


def _curve(runs, pick) -> dict:
    arr = np.array([[pick(r) for r in run["rows"]] for run in runs], dtype=float)
    return {"mean": arr.mean(0).round(4).tolist(), "std": arr.std(0).round(4).tolist()}


MARGINS = [0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2]


CLASSES = {"digits": 10, "traffic": 3, "maintenance": 2, "parts": 3, "letters": 20}


def replay(row: dict, margin: float, classes: int | None = None) -> str:
    """The arm ``choose.pick_arm`` picks from the row's recorded CV scores with ``margin`` (and,
    given ``classes``, the labels per class: the switch to the network from ``SWITCH_PER_CLASS``)."""
    return pick_arm({a: v for a, v in row["choice"]["cv"].items() if a in ARMS}, head_margin=margin,
                    per_class=None if classes is None else row["labels"] / classes)


def margin_sweep(runs: list[dict]) -> dict:
    """How often the choice replayed at each head margin picks the best arm on the test split
    (within TIE), and its mean regret in test balanced accuracy."""
    out = {}
    for m in MARGINS:
        hits, regret = 0, []
        for run in runs:
            for row in run["rows"]:
                best = max(row[a]["balanced_accuracy"] for a in ARMS)
                got = row[replay(row, m, CLASSES.get(run["dataset"]))]["balanced_accuracy"]
                hits += got >= best - TIE
                regret.append(best - got)
        out[str(m)] = {"rate": round(hits / max(len(regret), 1), 3), "mean_regret": round(float(np.mean(regret)), 4),
                       "of": len(regret)}
    return out


def summarize(runs: list[dict]) -> dict:
    n = min(len(r["rows"]) for r in runs)
    for r in runs:
        r["rows"] = r["rows"][:n]
        for row in r["rows"]:
            row["chosen"] = replay(row, HEAD_MARGIN, CLASSES.get(r["dataset"]))
    labels = [row["labels"] for row in runs[0]["rows"]]
    out = {"labels": labels, "seeds": len(runs), "accuracy": {}, "balanced_accuracy": {}}
    pickers = {a: (lambda a: lambda row, k: row[a][k])(a) for a in ARMS}
    pickers["chosen"] = lambda row, k: row[row["chosen"]][k]
    pickers["chosen_tie_only"] = lambda row, k: row[row["choice"]["mode"]][k]
    pickers["rule15"] = lambda row, k: row[row["rule15"]][k]
    if all("probes_only" in row for r in runs for row in r["rows"]):  # over the cap: the decision before sampling
        pickers["probes_only"] = lambda row, k: row[row["probes_only"]["mode"]][k]
    for key in ("accuracy", "balanced_accuracy"):
        for name, p in pickers.items():
            out[key][name] = _curve(runs, lambda row, p=p: p(row, key))
    target = out["accuracy"]["random"]["mean"][-1]
    out["target_accuracy"] = target
    out["labels_to_reach_random_at_max"] = {
        n: labels_to_reach(labels, c["mean"], target) for n, c in out["accuracy"].items()}
    per_seed = {}
    for name, p in pickers.items():
        need = [labels_to_reach(labels, [p(row, "accuracy") for row in run["rows"]], target) for run in runs]
        got = [v for v in need if v is not None]
        per_seed[name] = {"by_seed": [None if v is None else round(v, 1) for v in need],
                          "mean": round(float(np.mean(got)), 1) if got else None,
                          "std": round(float(np.std(got)), 1) if got else None, "reached": f"{len(got)} of {len(need)}"}
    out["labels_to_reach_per_seed"] = per_seed
    # finetune - head, per budget
    diff = np.array([[row["finetune"]["balanced_accuracy"] - row["head"]["balanced_accuracy"] for row in run["rows"]]
                     for run in runs])
    out["finetune_minus_head"] = {"mean": diff.mean(0).round(4).tolist(), "std": diff.std(0).round(4).tolist()}
    lead = [b for b, m, s in zip(labels, diff.mean(0), diff.std(0)) if m > max(s, TIE)]
    out["finetune_leads_from"] = lead[0] if lead else None
    # how often the measured choice (and the old rule) picks the best arm on the test split
    whos = [("chosen", lambda row: row["chosen"]), ("chosen_tie_only", lambda row: row["choice"]["mode"]),
            ("rule15", lambda row: row["rule15"])]
    if "probes_only" in pickers:
        whos.append(("probes_only", lambda row: row["probes_only"]["mode"]))
    for who, get in whos:
        hits, regret, by_budget = 0, [], {}
        for run in runs:
            for row in run["rows"]:
                best = max(row[a]["balanced_accuracy"] for a in ARMS)
                got = row[get(row)]["balanced_accuracy"]
                ok = got >= best - TIE
                hits += ok
                regret.append(best - got)
                by_budget.setdefault(str(row["labels"]), []).append(ok)
        total = sum(len(r["rows"]) for r in runs)
        out[f"{who}_picks_best"] = {"rate": round(hits / total, 3), "of": total,
                                    "mean_regret": round(float(np.mean(regret)), 4),
                                    "by_budget": {b: f"{sum(v)} of {len(v)}" for b, v in by_budget.items()}}
    out["margin_sweep"] = margin_sweep(runs)
    out["choice_modes_by_budget"] = {str(b): [run["rows"][i]["chosen"] for run in runs]
                                     for i, b in enumerate(labels)}
    out["warnings_by_budget"] = {  # the probe warning as choose.probe_warning words it now, from the CV scores
        str(b): sum(1 for run in runs if probe_warning("e", run["rows"][i]["choice"]["cv"]["head"],
                                                       run["rows"][i]["choice"]["cv"]["probe_random"]))
        for i, b in enumerate(labels)}
    out["warnings"] = sum(out["warnings_by_budget"].values())
    out["choice_seconds_median"] = {str(b): float(np.median([run["rows"][i]["choice"]["seconds"] for run in runs]))
                                    for i, b in enumerate(labels)}
    out["pretrain_seconds_median"] = float(np.median([run["pretrain"]["seconds"] for run in runs]))
    head, ft = per_seed["head"], per_seed["finetune"]
    lh, lf = out["labels_to_reach_random_at_max"]["head"], out["labels_to_reach_random_at_max"]["finetune"]
    std = max(head["std"] or 0.0, ft["std"] or 0.0)
    out["goal_head_no_more_labels_than_finetune"] = {
        "head": lh, "finetune": lf, "std_over_seeds": std,
        "met": lh is not None and (lf is None or lh <= lf + std)}
    return out


def print_report(report: dict) -> None:
    for name, d in report["datasets"].items():
        tab = Table(title=f"{name}, {d['seeds']} seeds: test accuracy mean±std (balanced accuracy for the picks)",
                    title_justify="left")
        tab.add_column("arm")
        for b in d["labels"]:
            tab.add_column(str(b), justify="right")
        tab.add_column(f"labels to {d['target_accuracy']:.3f}", justify="right")
        for arm, c in d["accuracy"].items():
            need = d["labels_to_reach_random_at_max"][arm]
            ps = d["labels_to_reach_per_seed"][arm]
            tab.add_row(arm, *[f"{m:.3f}±{s:.3f}" for m, s in zip(c["mean"], c["std"])],
                        ("-" if need is None else f"{need:.0f}") + f" ({ps['mean']}±{ps['std']}, {ps['reached']})")
        console.print(tab)
        console.print(f"  finetune - head balanced accuracy: " + ", ".join(
            f"{b}: {m:+.3f}±{s:.3f}" for b, m, s in zip(d["labels"], d["finetune_minus_head"]["mean"],
                                                       d["finetune_minus_head"]["std"]))
                      + f"; fine-tuning leads from {d['finetune_leads_from']}")
        for who in ("chosen", "chosen_tie_only", "rule15", "probes_only"):
            if f"{who}_picks_best" not in d:
                continue
            p = d[f"{who}_picks_best"]
            console.print(f"  {who} picks the best arm {p['rate']:.0%} of {p['of']} "
                          f"(mean regret {p['mean_regret']:.4f}): "
                          f"{p['by_budget']}")
        console.print(f"  choices: {d['choice_modes_by_budget']}; probe warnings {d['warnings']}; "
                      f"choice seconds (median) {d['choice_seconds_median']}")
        console.print("  head margin sweep (rate picking the best, mean regret): " + ", ".join(
            f"{m}: {v['rate']:.2f}/{v['mean_regret']:.4f}" for m, v in d["margin_sweep"].items()))
        g = d["goal_head_no_more_labels_than_finetune"]
        console.print(f"  goal (issue 26): head needs no more labels than fine-tune within one std: "
                      f"{'MET' if g['met'] else 'MISSED'} ({g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--datasets", default="digits,traffic,maintenance")
    ap.add_argument("--out", default=str(REPORTS / "head_vs_finetune.json"))
    ap.add_argument("--from-partial", action="store_true", help="build the report from <out>.partial.json (or the runs <out> holds)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the (dataset, seed) runs <out>.partial.json holds (cut to the budgets) and run the rest")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = [s.strip() for s in args.datasets.split(",")]
    for s in sets:
        if s not in BUDGETS:
            raise SystemExit(f"--datasets {s!r}: expected some of {', '.join(BUDGETS)}")
    out = Path(args.out)
    partial = out.with_suffix(".partial.json")
    t0 = time.perf_counter()
    saved = partial if partial.exists() or not out.exists() else out  # a finished report keeps its runs too
    runs = json.loads(saved.read_text())["runs"] if args.from_partial or args.resume else []
    for r in runs:
        r["rows"] = [row for row in r["rows"] if row["labels"] in BUDGETS[r["dataset"]]]
    have = {(r["dataset"], r["seed"]) for r in runs}
    if not args.from_partial:
        tmp = tempfile.TemporaryDirectory(prefix="alsql-head-vs-finetune-")
        builders = {"digits": lambda: le.digits(False), "traffic": lambda: le.traffic(False, Path(tmp.name)),
                    "maintenance": lambda: le.maintenance(False, Path(tmp.name)),
                    "parts": lambda: le.parts(False), "letters": lambda: le.letters(False)}
        data = {s: builders[s]() for s in sets}
        for seed in range(args.seeds):  # seed by seed: a cut-short run has whole seeds
            for s in sets:
                if (s, seed) not in have:
                    runs.append(run_seed(data[s], seed, BUDGETS[s]))
                partial.write_text(json.dumps({"runs": runs}))
        tmp.cleanup()
    report = {"config": {"seeds": args.seeds, "budgets": {s: BUDGETS[s] for s in sets}, "tie": TIE,
                         "torch_threads": 1, "labels": "random, nested (one seeded order per seed)",
                         "networks": {"digits": "SmallCNN(width=16)", "traffic": "VideoNet(SmallCNN(width=16))",
                                      "maintenance": "AudioCNN(width=16)", "parts": "SmallCNN(width=16), avgmax",
                                      "letters": "SmallCNN(width=16)"}},
              "datasets": {}}
    for s in dict.fromkeys(r["dataset"] for r in runs):
        report["datasets"][s] = summarize([r for r in runs if r["dataset"] == s])
    report["margin_sweep_all"] = margin_sweep(runs)
    report["config"]["head_margin"] = HEAD_MARGIN
    console.print("all datasets, head margin sweep (rate picking the best, mean regret): " + ", ".join(
        f"{m}: {v['rate']:.2f}/{v['mean_regret']:.4f}" for m, v in report["margin_sweep_all"].items()))
    report["runs"] = runs
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print_report(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    console.print(f"wrote {out} in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
