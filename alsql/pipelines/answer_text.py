"""The analyst's answer in words: numbers, the one plain sentence, and the labels that
would halve an interval. Pure functions on rows of the answer marts (dicts with their
columns); nothing here estimates anything.

- :func:`sentence`: "abnormal is followed by a failure within the window more often
  than normal: difference 0.31, 95% CI 0.19-0.43, p < 0.001, from 300 evaluation
  labels and 12,400 predictions". The direction comes from the sign of the difference
  (the larger group is named first); "no clear difference" when the interval covers 0.
- :func:`labels_to_halve`: the PPI interval is ``z * se`` wide on each side with
  ``se^2 = rectifier_var / n + imputed_var / N``; halving it needs ``n'`` labels with
  ``rectifier_var / n' + imputed_var / N = se^2 / 4``. When ``imputed_var / N``
  alone is at least ``se^2 / 4``, labels alone cannot halve it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["number", "interval", "p_text", "level_text", "sentence", "single_sentence", "labels_to_halve",
           "halving_text"]

# How each estimand of the marts reads when group a is larger than group b.
_MORE = {
    "failure_rate": "{a} is followed by a failure within the window more often than {b}",
    "claim_rate": "{a} serials get a warranty claim more often than {b} serials",
    "accidents_per_camera": "{a} cameras record more accidents than {b} cameras",
    "claim_rate_by_class": "serials with {a} images get a warranty claim more often than serials with {b} images",
    "class_share": "{a} items are more common than {b} items",
}


_TINY = 1e-9  # relative size below which a width or difference is rounding noise of 0


def number(x: float | None) -> str:
    """A figure for a sentence: 2 decimals, 2 significant digits under 0.01, thousands separated."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) <= _TINY * 1e-3:  # rounding noise of 0
        return "0.00"
    if abs(x) < 0.01:
        return f"{x:.2g}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.2f}"


def interval(low: float, high: float) -> str:
    """``0.19-0.43``, or ``-0.05 to 0.20`` when a bound is negative."""
    sep = " to " if low < 0 or high < 0 else "-"
    return f"{number(low)}{sep}{number(high)}"


def p_text(p: float | None) -> str:
    """``p < 0.001``, ``p = 0.03``, ``p = 0.46``."""
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


def level_text(level: float) -> str:
    """``95%`` for 0.95, ``99.9%`` for 0.999."""
    return f"{100 * level:.10g}%"


def _quantity(label: str) -> str:
    """An estimand label without its ", by ..." tail: the quantity itself."""
    return label.split(", by ")[0]


def _counts(n_labeled: int, n_unlabeled: int) -> str:
    labels = "evaluation label" if n_labeled == 1 else "evaluation labels"
    total = n_labeled + n_unlabeled
    return f"from {n_labeled:,} {labels} and {total:,} prediction{'s' if total != 1 else ''}"


def sentence(estimand: str, label: str, diff: dict[str, Any]) -> str:
    """One plain sentence for a row of answer_differences (group_a - group_b)."""
    a, b, d, lo, hi = diff["group_a"], diff["group_b"], diff["difference"], diff["ci_low"], diff["ci_high"]
    if d < 0:  # name the larger group first
        a, b, d, lo, hi = b, a, -d, -hi, -lo
    p = diff["p_value"]
    if max(abs(d), abs(lo), abs(hi)) <= _TINY:
        d, lo, hi, p = 0.0, 0.0, 0.0, 1.0  # rounding noise of two equal estimates
    ci = f"{level_text(diff['level'])} CI {interval(lo, hi)}"
    tail = f"difference {number(d)}, {ci}, {p_text(p)}, {_counts(diff['n_labeled'], diff['n_unlabeled'])}"
    if lo <= 0 <= hi:
        return f"no clear difference between {a} and {b} in {_quantity(label)}: {tail}"
    if estimand in _MORE:
        head = _MORE[estimand].format(a=a, b=b)
    elif estimand.endswith(("_after", "_before")):  # a declared business event table
        table, side = estimand.rsplit("_", 1)
        verb = "followed" if side == "after" else "preceded"
        head = f"{a} items are {verb} by an event of {table} within the window more often than {b} items"
    elif estimand.startswith("accuracy_by_"):
        head = f"the model is right more often on {a} than on {b}"
    else:
        head = f"{a} is higher than {b} in {_quantity(label)}"
    return f"{head}: {tail}"


def single_sentence(label: str, row: dict[str, Any]) -> str:
    """The sentence for an estimand with one group (no difference to test)."""
    ci = f"{level_text(row['level'])} CI {interval(row['ci_low'], row['ci_high'])}"
    return f"{_quantity(label)}: {number(row['estimate'])}, {ci}, {_counts(row['n_labeled'], row['n_unlabeled'])}"


def labels_to_halve(row: dict[str, Any]) -> int | None:
    """More evaluation labels that would halve ``row``'s interval (a ppi or classical row
    of answer_estimates); None when labels alone cannot (the predictions' part of the
    variance is at least a quarter of it), 0 when the interval has no width."""
    rv, iv = float(row["rectifier_var"] or 0.0), float(row["imputed_var"] or 0.0)
    n, big_n = int(row["n_labeled"]), int(row["n_unlabeled"])
    unlabeled = iv / big_n if iv and big_n else 0.0
    se2 = rv / n + unlabeled
    if math.sqrt(max(se2, 0.0)) <= _TINY * max(1.0, abs(float(row["estimate"]))):
        return 0  # no width: rounding noise of a zero variance
    room = se2 / 4 - unlabeled
    if room <= 0:
        return None
    return max(0, math.ceil(rv / room - n - 1e-9))


def halving_text(rows: list[dict[str, Any]], shared: bool = True) -> str:
    """What it takes to halve the PPI intervals of ``rows`` (one per group). ``shared``:
    the groups share their labels (groups by true class), so the most any group needs is
    enough; else (groups that split the items) each group needs its own and they add up."""
    if not rows:
        return "no PPI interval to halve"
    what = "PPI interval" if rows[0]["estimator"] == "ppi" else "interval"
    stuck = [r["grp"] for r in rows if labels_to_halve(r) is None]
    if stuck:
        return (f"the {what}{'s' if len(stuck) > 1 else ''} of {', '.join(stuck)} cannot be halved by labels alone: the predictions' part of "
                f"the variance alone exceeds a quarter of it")
    needs = [labels_to_halve(r) or 0 for r in rows]
    more = max(needs) if shared else sum(needs)
    if more == 0:
        return f"the {what}{'s have' if len(rows) > 1 else ' has'} no width to halve"
    whose = "the " if len(rows) == 1 else "every group's " if shared else "each group's "
    return f"about {more:,} more evaluation labels would halve {whose}{what}"
