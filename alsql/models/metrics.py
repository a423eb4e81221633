"""Classification metrics from a confusion matrix, and label-efficiency helpers.

A confusion matrix is ``(C, C)`` int64 with rows = true class, columns = predicted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["confusion_matrix", "accuracy", "per_class_recall", "balanced_accuracy", "macro_f1", "selection_key",
           "class_weights", "logit_adjustment", "imbalance_warnings", "one_class_warning", "metrics_dict", "labels_to_reach"]

# The model predicts one class for this share of a set or more: worth a warning.
ONE_CLASS_SHARE = 0.95


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """``(C, C)`` counts of (true, predicted) pairs; ``y_true``/``y_pred`` are ``(N,)`` ints.
    ``weights`` ``(N,)`` (an evaluation item's inverse-probability weight): the sums of the
    weights instead of counts (float)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    return np.bincount(t * num_classes + p, weights=w, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(cm: np.ndarray) -> float:
    """Fraction correct; NaN for an empty matrix."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """``(C,)`` recall per true class; NaN for a class with no examples."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present (as true labels) in ``cm``; NaN when empty.

    The same figure as scikit-learn's ``balanced_accuracy_score`` on the same labels."""
    rec = per_class_recall(cm)
    present = ~np.isnan(rec)
    return float(rec[present].mean()) if present.any() else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over the classes that occur as true or predicted labels (as
    scikit-learn's ``f1_score(average="macro")`` without ``labels``); NaN when empty."""
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    seen = (support + predicted) > 0
    if not seen.any():
        return float("nan")
    f1 = 2 * tp[seen] / (support[seen] + predicted[seen])
    return float(f1.mean())


def selection_key(cm: np.ndarray, loss: float) -> tuple[float, float, float]:
    """How checkpoints compare (greater is better): balanced accuracy, then macro-F1, then
    lower summed evaluation ``loss``. Never plain accuracy, which on an imbalanced set
    prefers the model that predicts the majority class."""
    bal, f1 = balanced_accuracy(cm), macro_f1(cm)
    return (-1.0 if np.isnan(bal) else bal, -1.0 if np.isnan(f1) else f1, -float(loss))


def class_weights(counts: Sequence[int]) -> list[float | None]:
    """scikit-learn's ``class_weight="balanced"``: ``n_samples / (n_classes * n_c)`` per class,
    ``n_classes`` counting only classes with labels; a class with no labels gets None (no term)."""
    c = np.asarray(counts, dtype=float)
    present = c > 0
    if not present.any():
        return [None] * len(c)
    total, k = c.sum(), int(present.sum())
    return [round(float(total / (k * n)), 6) if n > 0 else None for n in c]


def logit_adjustment(counts: Sequence[int], tau: float = 1.0) -> list[float]:
    """The training-time logit offsets of logit-adjusted cross-entropy (Menon et al. 2021, "Long-tail
    learning via logit adjustment"): ``tau * log(prior_c)``, the prior being each class's share of
    the training labels. A class with no labels gets the largest prior's offset (it is treated as
    a common class: never boosted at prediction). Softmax is blind to a common shift, so equal
    counts change nothing."""
    c = np.asarray(counts, dtype=float)
    if not (c > 0).any():
        return [0.0] * len(c)
    prior = c / c.sum()
    top = prior.max()
    return [round(float(tau * np.log(p if p > 0 else top)), 6) for p in prior]


def imbalance_warnings(cm: np.ndarray, class_names: Sequence[str], where: str = "the evaluation set",
                       one_class_note: str = "") -> list[str]:
    """One line per problem of a model on ``cm``: the classes present with recall 0 (named),
    and predicting one class for ``ONE_CLASS_SHARE`` or more of the set (+ ``one_class_note``)."""
    out = []
    rec = per_class_recall(cm)
    zero = [n for n, r in zip(class_names, rec) if not np.isnan(r) and r == 0]
    if zero:
        out.append(f"recall 0 on {where} for class{'es' if len(zero) > 1 else ''} {', '.join(zero)}: "
                   f"the model never finds {'them' if len(zero) > 1 else 'it'}")
    total = cm.sum()
    if total:
        share = cm.sum(axis=0) / total
        top = int(share.argmax())
        if share[top] >= ONE_CLASS_SHARE:
            out.append(one_class_warning(class_names[top], float(share[top]), int(total), where) + one_class_note)
    return out


def one_class_warning(name: str, share: float, total: int, where: str) -> str:
    """The line said when a model predicts ``name`` for ``share`` of ``total`` items of ``where``."""
    return (f"the model predicts {name} for {share:.0%} of {where} ({total} items): "
            f"it may have collapsed to one class")


def metrics_dict(cm: np.ndarray, class_names: Sequence[str]) -> dict:
    """JSON-ready metrics: accuracy, balanced accuracy, macro-F1, per-class recall (by
    name), evaluated count."""
    rec = per_class_recall(cm)
    bal, f1 = balanced_accuracy(cm), macro_f1(cm)
    return {
        "accuracy": None if np.isnan(accuracy(cm)) else round(accuracy(cm), 6),
        "balanced_accuracy": None if np.isnan(bal) else round(bal, 6),
        "macro_f1": None if np.isnan(f1) else round(f1, 6),
        "per_class_recall": {
            n: (None if np.isnan(r) else round(float(r), 6)) for n, r in zip(class_names, rec)
        },
        "evaluated": int(cm.sum()),
    }


def labels_to_reach(budgets: Sequence[float], acc: Sequence[float], target: float) -> float | None:
    """Labels at which the curve ``acc(budgets)`` first reaches ``target`` (linear interpolation).

    None when it never does. ``budgets`` ascending.
    """
    b = np.asarray(budgets, dtype=float)
    a = np.asarray(acc, dtype=float)
    for i in range(len(b)):
        if a[i] >= target:
            if i == 0:
                return float(b[0])
            frac = (target - a[i - 1]) / (a[i] - a[i - 1]) if a[i] != a[i - 1] else 1.0
            return float(b[i - 1] + frac * (b[i] - b[i - 1]))
    return None
