"""The collapse guard: a model that predicts one class for nearly the whole pool gets its
decision re-balanced to the class shares of its labels.

With a handful of labels of a rare class (6 scratches and dents among 20 part images) a
small network often learns too little to move its logits far from input to input: the
logits still rank the items (the likeliest scratches score a little higher on ``scratch``),
but one class wins the argmax everywhere and the model says ``ok`` for every part. The
guard scores a sample of the unlabeled pool after training; when one class takes
``ONE_CLASS_SHARE`` (95 %) of it or more while the labels give the other classes at least
twice the share the model does, it adds one offset per class to the network's last bias
(``fc.bias``) so that the argmax shares on the sample match the class shares of the training
labels. This is distribution alignment (Berthelot et al. 2019, ReMixMatch: the predicted
class marginal brought to the labeled one), applied once to the decision, as a label-shift
correction (Saerens et al. 2002) is: the ranking within each class is the model's own.

Measured on the generated part images of ``benchmarks/rare_data.py`` (5 seeds, 20 random
labels, no other choice made on them): the models that predicted ``ok`` for 98-100 % of the
test split reached balanced accuracy 0.336 (chance is 0.333); aligned, 0.376, predicting
``ok`` for 67-82 %. On the same seeds at 40 and 100 labels, where the models did not collapse,
alignment helped as often as it hurt (0.369 -> 0.393, 0.476 -> 0.463): so the guard acts only
on a collapse. The offsets are recorded in the model's params (``collapse_guard``);
``--no-collapse-guard`` turns it off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from alsql.models.metrics import ONE_CLASS_SHARE

__all__ = ["GUARD_SAMPLE", "GUARD_MAX_PER_CLASS", "aligning_offsets", "collapse_guard", "guard_network", "guard_line", "logits_of"]

GUARD_SAMPLE = 1024  # pool items scored after training to look for a collapse
# The guard acts only while the classes the model stopped predicting have fewer labels than this on
# average: with few labels a collapse is a failure to learn them; with many, the unlabeled pool may
# simply hold few of them any more (rare-seeking rounds take them out of it), and the labels' shares,
# which over-represent them then, are no target for the pool.
GUARD_MAX_PER_CLASS = 15


def aligning_offsets(logits: np.ndarray, target: np.ndarray, iters: int = 400) -> np.ndarray:
    """``(C,)`` offsets ``b`` such that the shares of ``argmax(logits + b)`` over the rows of
    ``logits`` ``(N, C)`` come close to ``target`` ``(C,)`` (shares summing to 1; a class of
    share 0 is pushed out of the argmax). Multiplicative updates on the share ratios, with a
    step that shrinks as it goes and is scaled to the spread of the logits."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n, c = z.shape
    if n == 0 or c < 2:
        return np.zeros(c)
    t = t / t.sum()
    scale = float(np.median(z.std(axis=0))) or 1.0
    eps = 0.5 / n
    b = np.zeros(c)
    best, best_err = b.copy(), np.inf
    for i in range(iters):
        share = np.bincount((z + b).argmax(1), minlength=c) / n
        err = float(np.abs(share - t).sum())
        if err < best_err:
            best, best_err = b.copy(), err
        if err <= 1.0 / n:
            break
        b = b + scale * (1.0 - i / iters) * (np.log(t + eps) - np.log(share + eps))
        b -= b.mean()
    return best


def collapse_guard(logits: np.ndarray, label_counts: Sequence[int]) -> dict | None:
    """The alignment to apply when ``logits`` ``(N, C)`` (a sample of the pool) collapse: one
    class takes ``ONE_CLASS_SHARE`` or more of the argmax while the labels (``label_counts``,
    ``(C,)``) give the other classes at least twice the share the model does, and hold fewer than
    ``GUARD_MAX_PER_CLASS`` labels of each of them on average. Returns
    ``{"offsets", "class", "share_before", "shares_after", "target", "sample"}`` (class ids,
    lists of floats), or None when the model has not collapsed."""
    z = np.asarray(logits, dtype=np.float64)
    counts = np.asarray(label_counts, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0 or z.shape[1] != len(counts) or counts.sum() <= 0:
        return None
    c = z.shape[1]
    share = np.bincount(z.argmax(1), minlength=c) / len(z)
    top = int(share.argmax())
    target = counts / counts.sum()
    if share[top] < ONE_CLASS_SHARE or (1.0 - share[top]) * 2.0 > (1.0 - target[top]):
        return None
    others = [k for k in range(c) if k != top and counts[k] > 0]
    if not others or counts[others].mean() >= GUARD_MAX_PER_CLASS:
        return None
    b = aligning_offsets(z, target)
    after = np.bincount((z + b).argmax(1), minlength=c) / len(z)
    return {"offsets": [round(float(v), 6) for v in b], "class": top, "share_before": round(float(share[top]), 4),
            "shares_after": [round(float(v), 4) for v in after], "target": [round(float(v), 4) for v in target],
            "sample": int(len(z))}


@torch.no_grad()
def logits_of(net: torch.nn.Module, x: torch.Tensor | None = None, batches=None, device: torch.device | None = None,
              limit: int = GUARD_SAMPLE) -> np.ndarray:
    """``(N, C)`` logits of ``net`` in eval mode on the tensor ``x`` or on the ``x`` of each
    ``(x, ...)`` batch of ``batches``, at most ``limit`` rows."""
    net.eval()
    device = device or next(net.parameters()).device
    out, n = [], 0
    src = ((x[s : s + 256],) for s in range(0, len(x), 256)) if x is not None else batches
    for b in src:
        xb = b[0] if isinstance(b, (tuple, list)) else b
        xb = xb[: limit - n]
        out.append(net(xb.to(device)).float().cpu().numpy())
        n += len(xb)
        if n >= limit:
            break
    return np.concatenate(out) if out else np.zeros((0, net.fc.out_features))


def guard_network(net: torch.nn.Module, logits: np.ndarray, label_counts: Sequence[int]) -> dict | None:
    """``collapse_guard`` on ``logits`` and, when it acts, its offsets added to ``net.fc.bias``
    (the network then decides as aligned wherever it is saved or run). Returns the guard's
    record or None."""
    g = collapse_guard(logits, label_counts)
    if g is not None:
        with torch.no_grad():
            net.fc.bias.add_(torch.tensor(g["offsets"], dtype=net.fc.bias.dtype, device=net.fc.bias.device))
    return g


def guard_line(g: dict, class_names: Sequence[str]) -> str:
    """What ``alsql train`` says when the guard acted."""
    after = ", ".join(f"{n} {s:.0%}" for n, s in zip(class_names, g["shares_after"]))
    target = ", ".join(f"{n} {s:.0%}" for n, s in zip(class_names, g["target"]))
    return (f"the model predicted {class_names[g['class']]} for {g['share_before']:.0%} of {g['sample']} pool items: "
            f"its decision was aligned to the labels' class shares ({target}); on those items now {after} "
            f"(--no-collapse-guard: keep the model as trained)")
