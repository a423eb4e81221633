"""The collapse guard: a model that predicts one class for nearly the whole pool gets its
decision re-balanced to the class shares of its labels.

With a handful of labels of a rare class (6 scratches and dents among 20 part images) a
small network often learns too little to move its logits far from input to input: the
logits still rank the items (the likeliest scratches score a little higher on ``scratch``),
but one class wins the argmax everywhere and the model says ``ok`` for every part. The
guard scores a sample of the unlabeled pool after training; when one class takes
``ONE_CLASS_SHARE`` (95 %) of it or more while the labels give the other classes at least
twice the share the model does (and hold fewer than ``GUARD_MAX_PER_CLASS`` labels of each on
average), it finds one offset per class such that the argmax of the logits plus the offsets
gives the sample the class shares of the training labels. This is distribution alignment
(Berthelot et al. 2019, ReMixMatch: the predicted class marginal brought to the labeled one),
applied once to the decision, as a label-shift correction (Saerens et al. 2002) is.

The offsets change the *decision* only: the predicted class written to ``predictions.class_id``
(what the analyst's marts and the labeling app read) is ``argmax(logits + offsets)``; the
probabilities, confidence, margin and entropy stay the network's own (``decision_offsets`` on the
network, saved in the artifact's meta; ``predict_batch`` returns the aligned ``class_id`` beside
the raw ``probs``), and so does the class the per-class strategies group by: the network's own
argmax is stored beside the decision in ``predictions.network_class_id`` (``stored_columns``). Folded into the last bias instead,
the offsets moved every margin too, and the uncertainty rounds after a collapse lost the
items nearest the rare tail: on the part images balanced_margin found 36 rare items per 100
labels at 100 labels instead of 49 and reached balanced accuracy 0.701 at 400 instead of 0.774
(``benchmarks/label_efficiency.py``, 5 seeds).

Grouped by the decided class instead, balanced_margin after a collapse took its per-class
quotas from the shifted boundary: in the rounds of ``benchmarks/label_efficiency.py`` (5 seeds,
the shorter training schedule, ``label_efficiency_rare_short.json``) it found 1.5x / 1.2x random's
defective parts per 100 labels at 100 / 200 labels against 1.8x / 1.6x grouped by the network's
class, and reached 0.679 balanced accuracy at 400 labels against 0.774 (the behaviour video:
1.9x / 1.5x against 2.0x / 1.8x; its 400-label figure, 0.940 against 0.852, differs by one seed
whose network, with every zone entry of the pool among its 200 labels, trained to chance).
Margin and TypiClust choose the same items as without the guard and decide better where it acts;
no model predicts one class on a seed whose labels hold two items of every class.

Measured on the generated part images of ``benchmarks/rare_data.py`` (5 seeds, 20 random
labels): the models that predicted ``ok`` for 98-100 % of the test split reached balanced
accuracy 0.336 (chance is 0.333); aligned, 0.376, predicting ``ok`` for 67-82 %. On the same
seeds at 40 and 100 labels, where the models did not collapse, alignment helped as often as it
hurt (0.369 -> 0.393, 0.476 -> 0.463): so the guard acts only on a collapse. The offsets are
recorded in the model's params (``collapse_guard``); ``--no-collapse-guard`` turns it off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from alsql.models.metrics import ONE_CLASS_SHARE

__all__ = ["GUARD_SAMPLE", "GUARD_MAX_PER_CLASS", "aligning_offsets", "collapse_guard", "guard_network", "guard_line",
           "logits_of", "guard_record", "set_offsets", "offsets_of", "decide", "stored_columns"]

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
    """``collapse_guard`` on ``logits`` and, when it acts, its offsets set as the network's
    ``decision_offsets`` (``decide`` and ``predict_batch`` then give the aligned class; the
    weights are not touched). Returns the guard's record or None."""
    g = collapse_guard(logits, label_counts)
    if g is not None:
        set_offsets(net, g["offsets"])
    return g


def guard_record(net: torch.nn.Module, logits: np.ndarray, label_counts: Sequence[int],
                 class_names: Sequence[str]) -> dict:
    """``guard_network`` and what ``params["collapse_guard"]`` records either way: ``acted``,
    ``sample`` and, when it acted, the class's name and the guard's record; when it did not, the
    top class's share of the sample."""
    g = guard_network(net, logits, label_counts)
    if g is None:
        share = np.bincount(np.asarray(logits).argmax(1), minlength=len(class_names)) / max(1, len(logits))
        return {"acted": False, "sample": int(len(logits)), "top_share": round(float(share.max()), 4)}
    return {"acted": True, "class_name": class_names[g["class"]]} | g


def set_offsets(net: torch.nn.Module, offsets: Sequence[float] | None) -> None:
    """Give ``net`` its decision offsets (None: the plain argmax), as a float32 tensor on the
    device of its parameters (an artifact's ``meta["decision_offsets"]`` when it is loaded)."""
    if offsets is None:
        net.decision_offsets = None
        return
    device = next(net.parameters()).device
    net.decision_offsets = torch.tensor(list(offsets), dtype=torch.float32, device=device)


def offsets_of(net: torch.nn.Module) -> list[float] | None:
    """The network's decision offsets as a list (what the artifact's meta records), or None."""
    off = getattr(net, "decision_offsets", None)
    return None if off is None else [float(v) for v in off.detach().cpu()]


def decide(net: torch.nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """``(N,)`` int64 classes: ``argmax(logits + decision_offsets)``, the plain argmax without offsets."""
    off = getattr(net, "decision_offsets", None)
    return (logits if off is None else logits.float() + off.to(logits.device)).argmax(1)


def stored_columns(cols: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """The ``predictions`` columns of a scored batch: ``cols`` (``score_columns`` of the
    network's probabilities) with ``class_id`` the decision. Where the network has decision
    offsets (``out["class_id"]``, from ``predict_batch`` or head scoring) ``network_class_id``
    keeps the network's own argmax, which the per-class strategies group by; else it is None
    (stored NULL: ``class_id`` is the network's argmax)."""
    cols = dict(cols)
    cols["network_class_id"] = None
    if "class_id" in out:
        cols["network_class_id"], cols["class_id"] = cols["class_id"], out["class_id"]
    return cols


def guard_line(g: dict, class_names: Sequence[str]) -> str:
    """What ``alsql train`` says when the guard acted."""
    after = ", ".join(f"{n} {s:.0%}" for n, s in zip(class_names, g["shares_after"]))
    target = ", ".join(f"{n} {s:.0%}" for n, s in zip(class_names, g["target"]))
    return (f"the model predicted {class_names[g['class']]} for {g['share_before']:.0%} of {g['sample']} pool items: "
            f"its decision was aligned to the labels' class shares ({target}); on those items now {after} "
            f"(--no-collapse-guard: keep the model as trained)")
