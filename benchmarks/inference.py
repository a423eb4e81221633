"""Inference benchmark: do the answer marts' intervals cover the truth, and how narrow are they?

A scenario-like generator draws ``--items`` units (clips), each truly abnormal with
probability 0.25, and a deliberately imperfect model: a score separates the classes
just enough for the target accuracy (0.80 and 0.92), the model's probability of
abnormal is overconfident (its logit 1.5 times the calibrated one) and it predicts
abnormal at 0.5, so it misses abnormal clips more often than it flags normal ones (a
class-biased model: the share it predicts is too low). Two estimands, the plain means
the answer marts compute (``class_share`` of the abnormal class; ``accuracy`` with the
model's confidence as its prediction of being right), each with a truth over the
``--items`` units the generator knows.

Per draw: a uniform evaluation round of ``--labels`` (300) labels; the naive interval
(predictions only), classical (lam = 0) and PPI++ (lam estimated) computed by
``ppi_py.ppi_mean_ci`` (lam=None, w), the estimator the SQL of ``answer_estimates``
equals to 1e-9 (tests/test_answer_estimators.py). Reported: coverage of the nominal 95%
intervals (goal 0.93-0.97 for classical and PPI), the median PPI / classical width
(goal <= 0.8 at accuracy 0.92). Active evaluation rounds (``alsql.models.strategies.
inclusion``: inclusion probabilities from the model's uncertainty with a uniform floor,
a systematic PPS draw, weights (K/N)/pi) over a grid of budgets: the fewest labels whose
median PPI width reaches the classical width of 300 random labels (goal: >= 25% fewer),
and, stricter, the PPI width of 300 random labels. Finally ``--sql-draws`` draws (half
random, half active) are written as units of ``int_answer_units`` on a temporary SQLite
database and the product's dbt models compute the estimates: the largest difference to
the numbers above is reported.

    python benchmarks/inference.py [--draws 1000] [--items 10000] [--labels 300] [--sql-draws 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ppi_py import ppi_mean_ci
from scipy.stats import norm

from alsql.models.strategies.inclusion import (active_inclusion_probs, draw_with_probs,
                                               inverse_probability_weights, uncertainty_for)

REPORT = Path(__file__).parent / "reports" / "inference.json"
P_ABNORMAL = 0.25
OVERCONFIDENCE = 1.5
ACCURACIES = (0.80, 0.92)
ESTIMANDS = ("class_share", "accuracy")
ACTIVE_BUDGETS = (60, 100, 150, 200, 250, 300)
ALPHA = 0.05


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def separation(accuracy: float) -> float:
    """The score shift ``mu`` (score ~ N(mu * abnormal, 1)) whose Bayes classifier has ``accuracy``."""
    prior = np.log(P_ABNORMAL / (1 - P_ABNORMAL))

    def acc(mu):  # threshold where the calibrated probability is 0.5: mu s - mu^2/2 + prior = 0
        t = (mu * mu / 2 - prior) / mu
        return P_ABNORMAL * norm.sf(t - mu) + (1 - P_ABNORMAL) * norm.cdf(t)

    lo, hi = 0.01, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if acc(mid) < accuracy else (lo, mid)
    return (lo + hi) / 2


def draw(rng: np.random.Generator, n_items: int, mu: float) -> dict[str, np.ndarray]:
    """One population: true class, the model's probability of abnormal, its class and confidence."""
    truth = (rng.random(n_items) < P_ABNORMAL).astype(float)
    score = rng.normal(mu * truth, 1.0)
    logit = np.log(P_ABNORMAL / (1 - P_ABNORMAL)) + mu * score - mu * mu / 2
    prob = _sigmoid(OVERCONFIDENCE * logit)  # the model's (overconfident) probability of abnormal
    pred = (prob > 0.5).astype(float)
    conf = np.maximum(prob, 1 - prob)
    return {"prob": prob, "conf": conf,
            "class_share": (truth, pred), "accuracy": ((pred == truth).astype(float), conf)}


def uncertainty(pop: dict, estimand: str) -> np.ndarray:
    if estimand == "class_share":
        probs = np.stack([1 - pop["prob"], pop["prob"]], 1)
        return uncertainty_for("abnormal", probs=probs, abnormal=np.array([False, True]))
    return uncertainty_for("correct", confidence=pop["conf"])


def estimate(y, yhat, labeled, weights=None) -> dict[str, tuple[float, float, float]]:
    """naive, classical and ppi: (estimate, ci_low, ci_high) as the answer marts compute them."""
    mask = np.zeros(len(y), bool)
    mask[labeled] = True
    yl, yhl, yhu = y[labeled], yhat[labeled], yhat[~mask]
    z = norm.ppf(1 - ALPHA / 2)
    out = {"naive": (yhat.mean(), yhat.mean() - z * yhat.std() / np.sqrt(len(yhat)),
                     yhat.mean() + z * yhat.std() / np.sqrt(len(yhat)))}
    for name, lam in (("classical", 0.0), ("ppi", None)):
        lo, hi = ppi_mean_ci(yl, yhl, yhu, alpha=ALPHA, lam=lam, w=weights)
        lo, hi = float(np.squeeze(lo)), float(np.squeeze(hi))
        out[name] = ((lo + hi) / 2, lo, hi)
    return out


def active_labels(pop: dict, estimand: str, budget: int, seed: int):
    n_items = len(pop["prob"])
    pi = active_inclusion_probs(uncertainty(pop, estimand), budget)
    idx = draw_with_probs(pi, budget, seed)
    return idx, inverse_probability_weights(pi[idx], budget, n_items)


def _covers(ci, truth):
    return ci[1] <= truth <= ci[2]


def simulate(args, accuracy: float) -> dict:
    mu = separation(accuracy)
    rng = np.random.default_rng([int(accuracy * 100), args.seed])
    random_runs = {e: {k: {"cover": [], "width": []} for k in ("naive", "classical", "ppi")} for e in ESTIMANDS}
    ratios = {e: [] for e in ESTIMANDS}
    active = {e: {k: {"cover": [], "width": []} for k in ACTIVE_BUDGETS} for e in ESTIMANDS}
    measured_acc = []
    for d in range(args.draws):
        pop = draw(rng, args.items, mu)
        measured_acc.append(pop["accuracy"][0].mean())
        labeled = rng.choice(args.items, args.labels, replace=False)
        for e in ESTIMANDS:
            y, yhat = pop[e]
            truth = y.mean()
            est = estimate(y, yhat, labeled)
            for k, ci in est.items():
                random_runs[e][k]["cover"].append(_covers(ci, truth))
                random_runs[e][k]["width"].append(ci[2] - ci[1])
            ratios[e].append((est["ppi"][2] - est["ppi"][1]) / (est["classical"][2] - est["classical"][1]))
            if d < args.active_draws:
                for k in ACTIVE_BUDGETS:
                    idx, w = active_labels(pop, e, k, seed=d * 1000 + k)
                    ci = estimate(y, yhat, idx, w)["ppi"]
                    active[e][k]["cover"].append(_covers(ci, truth))
                    active[e][k]["width"].append(ci[2] - ci[1])
    out = {"accuracy_target": accuracy, "accuracy_measured": float(np.mean(measured_acc)), "separation": mu,
           "estimands": {}}
    for e in ESTIMANDS:
        res = {k: {"coverage": float(np.mean(v["cover"])), "median_width": float(np.median(v["width"]))}
               for k, v in random_runs[e].items()}
        res["median_width_ratio_ppi_classical"] = float(np.median(ratios[e]))
        curve = {k: {"coverage": float(np.mean(v["cover"])), "median_width": float(np.median(v["width"]))}
                 for k, v in active[e].items()}
        res["active"] = {"budgets": curve,
                         "labels_for_classical_width_300": _labels_needed(curve, res["classical"]["median_width"]),
                         "labels_for_ppi_width_300": _labels_needed(curve, res["ppi"]["median_width"])}
        out["estimands"][e] = res
    return out


def _labels_needed(curve: dict, width: float) -> float | None:
    """The budget (interpolated on the grid) at which the active median width falls to ``width``."""
    ks = sorted(curve)
    ws = [curve[k]["median_width"] for k in ks]
    if ws[0] <= width:
        return float(ks[0])
    for (k0, w0), (k1, w1) in zip(zip(ks, ws), zip(ks[1:], ws[1:])):
        if w1 <= width:
            return float(k0 + (k1 - k0) * (w0 - width) / (w0 - w1))
    return None


def sql_check(args, work: Path) -> dict:
    """``--sql-draws`` draws through the product's SQL (int_answer_estimators, answer_estimates on
    SQLite): the largest absolute difference to ``estimate`` over estimates and interval ends."""
    from sqlalchemy import MetaData, Table, insert, text

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.pipelines.marts import build, run_dbt

    url = f"sqlite:///{work / 'inference.db'}"
    upgrade(url)
    engine = make_engine(url)
    draws = []
    rng = np.random.default_rng([args.seed, 99])
    mu = separation(ACCURACIES[-1])
    with write_transaction(engine) as conn:
        for d in range(args.sql_draws):
            pid = create_project(conn, f"inference-{d}", ["normal", "abnormal"], "benchmark draw").project_id
            pop = draw(rng, args.sql_items, mu)
            picks = {}
            for e in ESTIMANDS:
                if d % 2:  # odd draws: an active round (weights), even: a uniform one
                    picks[e] = active_labels(pop, e, args.sql_labels, seed=d)
                else:
                    picks[e] = (rng.choice(args.sql_items, args.sql_labels, replace=False), None)
            draws.append((pid, pop, picks))
    t0 = time.perf_counter()
    result = build(url, select="answer_estimates", work_dir=work / "dbt")
    if not result.success:
        raise SystemExit(f"dbt build failed: {result.error} {[(n.name, n.message) for n in result.failed]}")
    units = Table("int_answer_units", MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        for pid, pop, picks in draws:
            rows = []
            for e in ESTIMANDS:
                y, yhat = pop[e]
                idx, w = picks[e]
                weight = dict(zip(idx.tolist(), (w if w is not None else np.ones(len(idx))).tolist()))
                grp = "abnormal" if e == "class_share" else "all"
                for i in range(len(y)):
                    lab = i in weight
                    rows.append({"unit_key": f"{pid}-1-{e}-{grp}-{i}", "project_id": pid, "model_id": 1,
                                 "mart": "benchmark", "estimand": e, "estimand_label": e.replace("_", " "),
                                 "is_ratio": 0, "shared_units": 1 if e == "class_share" else 0, "grp": grp,
                                 "unit_id": i, "is_labeled": int(lab), "weight": weight.get(i, 1.0),
                                 "y_num": float(y[i]) if lab else None, "yhat_num": float(yhat[i]),
                                 "y_den": 1.0 if lab else None, "yhat_den": 1.0})
            conn.execute(insert(units), rows)
    rerun = run_dbt(url, ["build", "--select", "int_answer_estimators", "answer_estimates"], work_dir=work / "dbt")
    if not rerun.success:
        raise SystemExit(f"dbt rerun failed: {rerun.error} {[(n.name, n.message) for n in rerun.failed]}")
    worst, compared = 0.0, 0
    with engine.connect() as conn:
        for pid, pop, picks in draws:
            got = {(r.estimand, r.estimator): r for r in conn.execute(text(
                "select estimand, estimator, estimate, ci_low, ci_high from answer_estimates "
                "where project_id = :p and mart = 'benchmark'"), {"p": pid})}
            for e in ESTIMANDS:
                y, yhat = pop[e]
                want = estimate(y, yhat, *picks[e])
                for k, (est, lo, hi) in want.items():
                    row = got[(e, k)]
                    worst = max(worst, abs(row.estimate - est), abs(row.ci_low - lo), abs(row.ci_high - hi))
                    compared += 1
    engine.dispose()
    return {"draws": args.sql_draws, "items": args.sql_items, "labels": args.sql_labels, "rows_compared": compared,
            "max_abs_difference": worst, "sql_seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--active-draws", type=int, default=400, help="draws per active budget")
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--labels", type=int, default=300)
    ap.add_argument("--sql-draws", type=int, default=20)
    ap.add_argument("--sql-items", type=int, default=2000)
    ap.add_argument("--sql-labels", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    settings = [simulate(args, a) for a in ACCURACIES]
    print(f"{args.draws} draws of {args.items} items, {args.labels} random evaluation labels; nominal 95% intervals")
    print(f"{'accuracy':>8} {'estimand':>12} {'naive cov':>9} {'classical cov':>13} {'ppi cov':>7} "
          f"{'ppi/classical width':>19} {'active labels = classical 300':>29} {'= ppi 300':>9} {'active cov':>10}")
    for s in settings:
        for e, r in s["estimands"].items():
            a = r["active"]
            k_cl, k_ppi = a["labels_for_classical_width_300"], a["labels_for_ppi_width_300"]
            covs = [v["coverage"] for v in a["budgets"].values()]
            print(f"{s['accuracy_measured']:>8.3f} {e:>12} {r['naive']['coverage']:>9.3f} "
                  f"{r['classical']['coverage']:>13.3f} {r['ppi']['coverage']:>7.3f} "
                  f"{r['median_width_ratio_ppi_classical']:>19.3f} "
                  f"{'n/a' if k_cl is None else f'{k_cl:.0f}':>29} {'n/a' if k_ppi is None else f'{k_ppi:.0f}':>9} "
                  f"{min(covs):.3f}-{max(covs):.3f}")
    sim_seconds = time.perf_counter() - t0
    check = None
    if args.sql_draws:
        with tempfile.TemporaryDirectory() as tmp:
            check = sql_check(args, Path(tmp))
        print(f"the product's SQL on {check['draws']} draws ({check['rows_compared']} estimates): largest difference "
              f"to the numbers above {check['max_abs_difference']:.2e}")
    report = {"benchmark": "inference", "draws": args.draws, "active_draws": args.active_draws, "items": args.items,
              "labels": args.labels, "level": 1 - ALPHA, "p_abnormal": P_ABNORMAL, "overconfidence": OVERCONFIDENCE,
              "settings": settings, "sql_check": check, "simulation_seconds": round(sim_seconds, 1),
              "seconds": round(time.perf_counter() - t0, 1)}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
