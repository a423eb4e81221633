"""Classification metrics from a confusion matrix, and label-efficiency helpers.

A confusion matrix is ``(C, C)`` int64 with rows = true class, columns = predicted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["confusion_matrix", "accuracy", "per_class_recall", "metrics_dict", "labels_to_reach"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts of (true, predicted) pairs; ``y_true``/``y_pred`` are ``(N,)`` ints."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(cm: np.ndarray) -> float:
    """Fraction correct; NaN for an empty matrix."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """``(C,)`` recall per true class; NaN for a class with no examples."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def metrics_dict(cm: np.ndarray, class_names: Sequence[str]) -> dict:
    """JSON-ready metrics: accuracy, per-class recall (by name), evaluated count."""
    rec = per_class_recall(cm)
    return {
        "accuracy": None if np.isnan(accuracy(cm)) else round(accuracy(cm), 6),
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
