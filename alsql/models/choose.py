"""Head, fine-tune or random start: chosen by measuring the arms on the labels.

``measure_choice`` compares, by balanced accuracy (``alsql.models.metrics``) of held-out
predictions, up to three ways to train on the labeled items:

- ``head``: a linear head on fixed features: the frozen encoder's embeddings of the items,
  or stored vectors (``features``: an encoder's ``embeddings`` rows, for head models).
  Features are computed once; the head is scikit-learn's ``LogisticRegression``
  (``class_weight="balanced"``, standardised features): milliseconds per fold.
- ``finetune``: the whole network trained from the encoder (``fit``, the run's settings).
- ``random``: the network trained from random weights, no encoder (``fit``, the same settings).

and, at no extra training cost, a linear probe on a randomly initialised network's features
(``probe_random``): when the encoder's probe does not beat it, the encoder's features carry
nothing a random network's do not, and ``Choice.warning`` says so, naming the encoder and both
scores.

Held out: the evaluation set when it has at least ``HOLDOUT_PER_CLASS`` (10) items of every
class with labels (each arm fitted once on all labels, scored on it); else stratified k-fold
cross-validation on the labels, ``k = min(5, max(3, fewest labels of a class))``, out-of-fold
predictions pooled into one confusion matrix (a balanced accuracy over every label, steadier
than a mean of tiny folds). Folds are a pure function of ``(labels, seed)``.

Compute budget: the head and the random probe cost a forward pass over the labeled items.
The ``finetune`` and ``random`` arms cost one training per fold (k trainings of (k-1)/k of the
labels each, i.e. about k times the run itself per arm), so they are measured only when the
labeled items are held in memory, and over ``COSTLY_MAX_LABELS`` (400) labels on a stratified
sample of 400 of them (``stratified_sample``): the cost stays the cap's whatever the labels, and
the decision (labels per class, the reason) is made for all of them. Where they are not
measured (items not held in memory) the probes still decide whether the encoder is worth
starting from: random weights when the encoder's probe does not beat a random network's; else,
over the cap, fine-tuning, under it the labels-per-class rule
(``alsql.models.encoders.choose_head``). Over the cap that probes-only rule fine-tuned from
encoders that only hurt: on the part images with small defects (``benchmarks/rare_data.py``, 800
labels, 3 seeds, ``benchmarks/head_vs_finetune.py`` report ``head_vs_finetune_over_cap.json``)
fine-tuning from the SimCLR encoder reaches 0.714 / 0.893 / 0.968 test balanced accuracy against
0.994 / 0.974 / 0.969 from random weights, and the probes chose fine-tuning on 2 seeds (mean
0.952); measured on the 400-label sample the choice took random weights on all 3 (0.979, the
best arm each time). On the 20 letters (1,200 labels) it picked the best arm on 3 seeds of 3
(0.764, regret 0.002) against the probes' 1 of 3 (0.737). Measuring there took 93-226 s on the
part images and 44-88 s on the letters (one core, beside another run). That report predates the
flips of colour images in training (``TrainConfig.augment``) and the letters' default-length
pretraining of the benchmark.

Under the cap the same measured start is what keeps a weak encoder from costing accuracy in
active-learning rounds (``benchmarks/label_efficiency.py --pretrained-start measured``, report
``label_efficiency_rare_measured.json``; the probes-only start beside it in
``label_efficiency_rare.json``): see that report's goals.

Decision (``pick_arm``): below ``SWITCH_PER_CLASS`` (15) labels per class, the head (the
cheapest arm, and the one rounds on stored vectors can use) unless another arm beats it by
more than ``HEAD_MARGIN`` held-out balanced accuracy; then the best of the others, an arm
within ``TIE`` (0.01) of it counting as tied and ties going to fine-tuning before random
weights. ``HEAD_MARGIN`` is the smallest margin that picks the best arm (on the test split)
most often in ``benchmarks/head_vs_finetune.py``: with small label sets the cross-validated
scores differ by a few points by chance, and the head is the better arm on the test split far
more often than those differences suggest. From ``SWITCH_PER_CLASS`` labels per class on the
network wins ties: the head is kept only when it beats every other arm by ``TIE``.

Measured (``benchmarks/head_vs_finetune.py``, 5 seeds, random labels, the networks' max
pooling, report ``benchmarks/reports/head_vs_finetune.json``; test-split accuracy): the head
leads early and fine-tuning overtakes it later in the curve - digits 40 labels 0.946 vs 0.919,
400 labels 0.982 vs 0.987; maintenance sounds 12 labels 0.960 vs 0.925, 48 and 96 labels 0.991
and 0.990 vs 1.000; traffic videos 6 labels 0.968 vs 0.870, 12 labels 0.965 vs 0.990 - while
cross-validation on many labels ties them (1.000 and 1.000). That is the switch: with it the
chosen arm reaches random-from-scratch's 400-label digits accuracy (0.976) with 200 labels
(the head 221, fine-tuning 194) and maintenance's 1.000 with 48 (fine-tuning 48; the head
never), and picks the best arm (within 0.01) in 83 % of digits rounds and 88 % of
maintenance's (80 % and 68 % with the head margin alone); switching from 5 or 10 labels per
class picked worse on digits. (Until this version the head was never kept from the switch on: it was
compared with itself. Replayed on the same runs' cross-validated scores, the digits choice keeps
the head at 200 labels on 2 seeds of 5; 191 labels were needed before, the rate is unchanged.)
Traffic never has 15 labels per class there (24 labels, 3
types): the head needs 22 labels to reach random's 0.983 on the mean curve, fine-tuning 12
(per seed 9.8 and 10.5; the head reaches it on 4 seeds of 5), and cross-validation on 2-8
labels per class cannot tell them apart (the choice picks the best arm in 60 %). On digits
with a noise encoder the choice leaves the head for random weights (cross-validated 0.717 vs
0.600 at 60 labels, 0.946 vs 0.888 at 200). Measuring costs 4-13 s per training on digits and
the two scenario sets (two costly arms, 3-5 folds, one core).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from alsql.errors import AlsqlError
from alsql.models.metrics import balanced_accuracy, confusion_matrix

__all__ = ["Choice", "measure_choice", "measure_sources", "describe", "stratified_folds", "stratified_sample",
           "fold_count",
           "linear_probe", "features_of", "probe_nets",
           "probe_warning", "pick_arm", "HEAD_MARGIN", "SWITCH_PER_CLASS", "ARMS", "COSTLY_MAX_LABELS", "HOLDOUT_PER_CLASS", "TIE",
           "PROBE_CEILING",
           "MEASURED_RULE"]

ARMS = ("head", "finetune", "random")
COSTLY_MAX_LABELS = 400
HOLDOUT_PER_CLASS = 10
TIE = 0.01
HEAD_MARGIN = 0.05
SWITCH_PER_CLASS = 15  # labels per class from which the network wins ties with the head
PROBE_CEILING = 0.99  # an encoder probe this good is never warned about, even when a random network's ties it
MEASURED_RULE = ("benchmarks/head_vs_finetune.py: the head kept unless another arm beats it by more than "
                 f"{HEAD_MARGIN} held-out balanced accuracy")


@dataclass
class Choice:
    """The measured start: ``mode`` (head / finetune / random), the held-out balanced accuracy
    of every arm measured (``scores``: head, finetune, random, probe_random; an arm not
    measured is absent), the reason in one sentence (``why``), how it was held out
    (``method``), a warning when the encoder's probe does not beat a random network's, and
    the seconds the measuring took."""

    mode: str
    scores: dict[str, float] = field(default_factory=dict)
    why: str = ""
    method: str = ""
    warning: str | None = None
    seconds: float = 0.0

    def as_params(self) -> dict:
        return asdict(self)


def fold_count(y: np.ndarray) -> int:
    """``k`` for ``y``'s labels: the fewest labels of a present class, clamped to 3..5."""
    counts = np.bincount(np.asarray(y, dtype=np.int64))
    present = counts[counts > 0]
    return int(min(5, max(3, present.min()))) if len(present) else 3


def stratified_folds(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``(N,)`` fold id 0..k-1 per label: each class's items shuffled (seeded) and dealt round
    robin, continuing where the previous class stopped (so folds stay even in size)."""
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    at = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx] = (at + np.arange(len(idx))) % k
        at = (at + len(idx)) % k
    return out


def stratified_sample(y: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of ``m`` of the labels ``y`` (``m < len(y)``), each class in proportion to
    its count (largest remainders, every present class at least one), seeded."""
    y = np.asarray(y, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    m = int(min(max(m, len(classes)), len(y)))
    exact = counts * m / len(y)
    take = np.maximum(np.floor(exact).astype(np.int64), 1)
    while take.sum() > m:  # the floor of one per class overshot: trim the largest
        take[np.argmax(take)] -= 1
    for c in np.argsort(-(exact - np.floor(exact)), kind="stable")[: m - int(take.sum())]:
        take[c] += 1
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(picks))


@torch.no_grad()
def features_of(net, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """``(N, D)`` float32 embeddings of ``x`` by ``net.embed`` in eval mode, on the net's device."""
    net.eval()
    dev = next(net.parameters()).device
    parts = [net.embed(x[s : s + batch_size].to(dev)).float().cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, getattr(net, "embedding_dim", 0)), np.float32)


def probe_nets(make_net: Callable[[], torch.nn.Module], encoder_state: dict,
               seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The two networks whose features the probes compare: ``make_net()`` started from the frozen
    encoder (seeded ``seed``) and a random network (seeded ``seed + 1``)."""
    from alsql.models.encoders import start_from_encoder

    torch.manual_seed(seed)
    enc = make_net()
    start_from_encoder(enc, encoder_state, "frozen")
    torch.manual_seed(seed + 1)
    return enc, make_net()


def linear_probe(ftr: np.ndarray, ytr: np.ndarray, fte: np.ndarray) -> np.ndarray:
    """Predicted classes of ``fte`` by a class-balanced logistic regression on standardised
    ``ftr`` (scikit-learn, C = 1); a single training class predicts itself."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ytr = np.asarray(ytr)
    if len(np.unique(ytr)) < 2:
        return np.full(len(fte), ytr[0] if len(ytr) else 0, dtype=np.int64)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    sc = StandardScaler().fit(ftr)
    clf = LogisticRegression(class_weight="balanced", max_iter=500)
    with warnings.catch_warnings():  # a probe of 500 iterations is a measurement, not a model to tune
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(sc.transform(ftr), ytr)
    return clf.predict(sc.transform(fte)).astype(np.int64)


def probe_warning(encoder: str, head: float, random_probe: float) -> str | None:
    """The warning when ``head`` (the encoder's probe) does not beat ``random_probe``, else None
    (also when the probe scores ``PROBE_CEILING`` or more: there is nothing left to beat)."""
    if head > random_probe or head >= PROBE_CEILING:
        return None
    return (f"{encoder}'s features score {head:.2f} balanced accuracy in a linear probe, no better than a random "
            f"network's {random_probe:.2f}: pretrain longer, use a foundation encoder "
            f"(alsql embed --encoder hf:...), or train from scratch (--init random)")


def _fit_predict(make_net, start: dict | None, cfg, xtr, ytr, xte, num_classes: int, seed: int) -> np.ndarray:
    from alsql.models.encoders import start_from_encoder
    from alsql.models.fit import fit

    torch.manual_seed(seed)
    net = make_net()
    if start is not None:
        start_from_encoder(net, start, "finetune")
    n, bs = len(ytr), cfg.batch_size

    def batches(epoch):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for s in range(0, n, bs):
            j = perm[s : s + bs]
            yield xtr[j], ytr[j]

    fit(net, batches, None, replace(cfg, seed=seed), num_classes, -(-n // bs))
    net.eval()
    dev = next(net.parameters()).device
    with torch.no_grad():
        out = [net(xte[s : s + 256].to(dev)).argmax(1).cpu() for s in range(0, len(xte), 256)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def _score(y_true, y_pred, num_classes: int) -> float:
    return round(balanced_accuracy(confusion_matrix(y_true, y_pred, num_classes)), 4)


def measure_choice(y: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int, *,
                   x: torch.Tensor | None = None, make_net: Callable[[], torch.nn.Module] | None = None,
                   encoder_state: dict | None = None, features: np.ndarray | None = None,
                   random_features: np.ndarray | None = None, cfg=None,
                   arms: Sequence[str] = ARMS, holdout: tuple | None = None, seed: int = 0,
                   encoder_name: str = "the encoder", max_costly_labels: int = COSTLY_MAX_LABELS,
                   total_labels: int | None = None, say: Callable[[str], None] | None = None) -> Choice:
    """Measure the arms (a subset of ``ARMS``) on the labels ``y`` ``(N,)`` and return the choice.

    ``x`` ``(N, ...)``: the labeled items as network input, with ``make_net`` (a fresh
    network of the run's architecture); ``encoder_state``: the encoder's ``state_dict``
    (loaded as ``start_from_encoder`` does). ``features`` ``(N, D)``: stored vectors for the
    head arm instead of the encoder's embeddings of ``x``; ``random_features``: a random
    network's embeddings of the items (computed from ``x`` when None). ``cfg``: the ``TrainConfig`` the
    costly arms train with. ``holdout``: ``(x_eval, y_eval)``, ``(x_eval, y_eval,
    features_eval)`` or ``(x_eval, y_eval, features_eval, random_features_eval)``: used instead of
    cross-validation when it has ``HOLDOUT_PER_CLASS``
    items of every class with labels. An arm whose inputs are missing is not measured. Over
    ``max_costly_labels`` labels with ``x`` given, every arm is measured on a stratified sample of
    that many (``stratified_sample``): the costly arms cost what they cost at the cap, and the
    decision (labels per class, the reason) is made for all the labels. ``total_labels``: the
    labels the decision is for when ``y`` is already such a sample of them.
    """
    t0 = time.perf_counter()
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=np.int64)
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise AlsqlError(f"arms {list(arms)!r}: expected some of {', '.join(ARMS)}")
    if len(y) < 2:
        raise AlsqlError(f"{len(y)} label(s): expected at least 2 to measure the head / fine-tune choice")
    if features is None and x is not None and len(x) != len(y) or features is not None and len(features) != len(y):
        raise AlsqlError("the items and their labels differ in count: expected one label per item")
    total = len(y) if total_labels is None else max(int(total_labels), len(y))
    if len(y) > max_costly_labels and x is not None and make_net is not None and cfg is not None:
        # Over the cap with the items in memory: every arm is measured on a stratified sample of
        # max_costly_labels labels (the cost stays the cap's), the decision made for all of them.
        keep = stratified_sample(y, max_costly_labels, seed)
        y, x = y[keep], x[keep]
        features = None if features is None else np.asarray(features)[keep]
        random_features = None if random_features is None else np.asarray(random_features)[keep]
    sampled = f"a stratified sample of {len(y)} of the {total} labels (the costly arms' cap)" if total > len(y) else ""
    enc_net = None
    if features is None and x is not None and make_net is not None and encoder_state is not None:
        from alsql.models.encoders import start_from_encoder

        torch.manual_seed(seed)
        enc_net = make_net()
        start_from_encoder(enc_net, encoder_state, "frozen")
        features = features_of(enc_net, x)
    rand_feats = random_features
    if rand_feats is None and x is not None and make_net is not None:
        torch.manual_seed(seed + 1)
        rand_net = make_net()
        rand_feats = features_of(rand_net, x)
    costly = len(y) <= max_costly_labels and x is not None and make_net is not None and cfg is not None
    measured = [a for a in arms if (a == "head" and features is not None)
                or (a == "finetune" and costly and encoder_state is not None) or (a == "random" and costly)]

    use_holdout = False
    if holdout is not None:
        ye = np.asarray(holdout[1].cpu() if isinstance(holdout[1], torch.Tensor) else holdout[1], dtype=np.int64)
        counts = np.bincount(ye, minlength=num_classes)
        use_holdout = all(counts[c] >= HOLDOUT_PER_CLASS for c in np.unique(y))
    preds: dict[str, np.ndarray] = {}
    if use_holdout:
        xe = holdout[0]
        truth = ye
        method = (f"held out on the evaluation set ({len(ye)} items, at least {HOLDOUT_PER_CLASS} per class)"
                  + (f", the arms trained on {sampled}" if sampled else ""))
        if "head" in measured:
            fe = holdout[2] if len(holdout) > 2 and holdout[2] is not None else (
                features_of(enc_net, xe) if enc_net is not None else None)
            if fe is None:
                measured.remove("head")
            else:
                preds["head"] = linear_probe(features, y, fe)
        if rand_feats is not None and len(holdout) > 3 and holdout[3] is not None:
            preds["probe_random"] = linear_probe(rand_feats, y, holdout[3])
        elif rand_feats is not None and random_features is None and xe is not None:
            preds["probe_random"] = linear_probe(rand_feats, y, features_of(rand_net, xe))
        xt, yt = (x, torch.as_tensor(y)) if x is not None else (None, None)
        for arm in ("finetune", "random"):
            if arm in measured and xe is not None:
                preds[arm] = _fit_predict(make_net, encoder_state if arm == "finetune" else None, cfg, xt, yt, xe,
                                          num_classes, seed)
            elif arm in measured:
                measured.remove(arm)
    else:
        k = fold_count(y)
        fold = stratified_folds(y, k, seed)
        truth = y
        method = f"{k}-fold stratified cross-validation on " + (sampled or f"{len(y)} labels")
        for arm in measured + (["probe_random"] if rand_feats is not None else []):
            preds[arm] = np.zeros(len(y), dtype=np.int64)
        yt = torch.as_tensor(y)
        for f in range(k):
            te, tr = fold == f, fold != f
            if not te.any():
                continue
            if "head" in measured:
                preds["head"][te] = linear_probe(features[tr], y[tr], features[te])
            if rand_feats is not None:
                preds["probe_random"][te] = linear_probe(rand_feats[tr], y[tr], rand_feats[te])
            for arm in ("finetune", "random"):
                if arm in measured:
                    tri, tei = torch.as_tensor(np.flatnonzero(tr)), torch.as_tensor(np.flatnonzero(te))
                    preds[arm][te] = _fit_predict(make_net, encoder_state if arm == "finetune" else None, cfg,
                                                  x[tri], yt[tri], x[tei], num_classes, seed * 100 + f)
    scores = {a: _score(truth, p, num_classes) for a, p in preds.items()}
    scores = {a: s for a, s in scores.items() if not math.isnan(s)}
    warning = None
    if "head" in scores and "probe_random" in scores and encoder_state is not None:
        warning = probe_warning(encoder_name, scores["head"], scores["probe_random"])
    mode, why = _decide(scores, measured, arms, total, max_costly_labels, encoder_state is not None, num_classes)
    choice = Choice(mode, scores, why, method, warning, round(time.perf_counter() - t0, 2))
    if say is not None:
        say(describe(choice))
    return choice


def pick_arm(scores: dict[str, float], head_margin: float | None = None, tie: float = TIE,
             per_class: float | None = None) -> str:
    """The arm of ``scores`` (held-out balanced accuracy by arm) to train: the head unless another
    arm beats it by more than ``head_margin`` (``HEAD_MARGIN``); else the best, an arm within
    ``tie`` of it counting as tied and ties going to the cheaper arm (fine-tune before random).

    ``per_class``: labels per class. From ``SWITCH_PER_CLASS`` on, the head is kept only when it
    beats every other arm by ``tie`` (the network wins ties): see the module's note."""
    margin = HEAD_MARGIN if head_margin is None else head_margin
    if per_class is not None and per_class >= SWITCH_PER_CLASS and len(scores) > 1:
        margin = -tie
    cand = [a for a in ARMS if a in scores]
    if not cand:
        raise AlsqlError("no arm scores to choose from")
    if "head" in scores and all(scores[a] <= scores["head"] + margin for a in cand if a != "head"):
        return "head"
    rest = [a for a in cand if a != "head"]
    best = max(scores[a] for a in rest)
    return next(a for a in rest if scores[a] >= best - tie)


def _decide(scores: dict, measured: list, arms: Sequence[str], n: int, cap: int, has_encoder: bool,
            num_classes: int = 1) -> tuple[str, str]:
    shown = ", ".join(f"{a} {scores[a]:.3f}" for a in ARMS if a in scores)
    cand = [a for a in ARMS if a in measured and a in scores]
    if not cand:
        if "finetune" in arms and has_encoder:
            return "finetune", "no arm could be measured: the whole network fine-tuned from the encoder"
        return "random", "no arm could be measured: random weights"
    per_class = n / max(1, num_classes)
    pick = pick_arm({a: scores[a] for a in cand}, per_class=per_class)
    if len(cand) > 1:
        best = max(scores[a] for a in cand)
        if per_class >= SWITCH_PER_CLASS and "head" in cand:
            rest = max(scores[a] for a in cand if a != "head")
            if pick == "head":
                return pick, (f"the head is kept: it beats every other arm by {TIE} or more held-out balanced "
                              f"accuracy ({shown})")
            return pick, (f"{per_class:.1f} labels per class (from {SWITCH_PER_CLASS} on the network wins unless the "
                          f"head beats it by {TIE}): {pick} ({shown})"
                          + ("" if rest >= scores["head"] else "; the head leads by less than the tie"))
        if pick == "head" and best > scores["head"]:
            return pick, (f"the head is kept: no other arm beats it by more than {HEAD_MARGIN} held-out balanced "
                          f"accuracy ({shown})")
        tied = [a for a in cand if a != pick and scores[a] >= best - TIE]
        return pick, (f"{pick} has the best held-out balanced accuracy ({shown})"
                      + (f"; within {TIE} of {', '.join(tied)}, the cheaper arm wins" if tied else ""))
    skipped = [a for a in arms if a not in measured]
    costly_skipped = [a for a in skipped if a != "head"]
    if costly_skipped and "head" in scores:
        # Fine-tuning and random weights were not trained (over the cap, or the items are not in
        # memory): the probes still say whether the encoder is worth starting from.
        over = n > cap
        why = f"{n} labels (over {cap}: " if over else f"{n} labels ("
        why += "fine-tuning is not cross-validated)"
        rnd = scores.get("probe_random")
        if rnd is not None and scores["head"] <= rnd:
            if "random" in arms:
                return "random", (f"{why}; the encoder's probe {scores['head']:.3f} does not beat a random "
                                  f"network's {rnd:.3f}: random weights")
        if over and "finetune" in arms and has_encoder:
            return "finetune", (f"{why}, and fine-tuning is measured to match or beat the head from there on: the "
                                f"whole network fine-tuned from the encoder (head probe {scores['head']:.3f})")
        if not over and "finetune" in arms and has_encoder:
            from alsql.models.encoders import choose_head

            mode, rule = choose_head("auto", n, num_classes)
            beats = "" if rnd is None else f"the encoder's probe {scores['head']:.3f} beats a random network's {rnd:.3f}; "
            return ("head" if mode == "frozen" else "finetune"), f"{why}; {beats}the rule: {rule}"
    return pick, f"{pick}: the only arm measured ({shown})"


def describe(choice: Choice) -> str:
    """One line for the CLI: the choice, the scores and how they were held out."""
    scores = ", ".join(f"{a} {s:.3f}" for a, s in choice.scores.items())
    return f"measured start: {choice.mode} ({choice.method}: {scores}; {choice.seconds:.1f} s): {choice.why}"


def _gather(src, keep: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A source's items and labels in its epoch-0 order; ``keep``: only these sorted positions."""
    xs, ys, at = [], [], 0
    for x, y in src.batches(0):  # a cached source decodes once here; fit reuses the decoded items
        if keep is None:
            xs.append(x)
            ys.append(y)
        else:
            sel = torch.as_tensor(keep[(keep >= at) & (keep < at + len(y))] - at, dtype=torch.long)
            if len(sel):
                xs.append(x[sel])
                ys.append(y[sel])
        at += len(y)
    return torch.cat(xs), torch.cat(ys)


def measure_sources(encoder_row, train_src, eval_src, cfg, make_net: Callable[[], torch.nn.Module], num_classes: int,
                    *, random_arm: bool = True, say: Callable[[str], None] | None = None) -> Choice | None:
    """``measure_choice`` for ``alsql train``: the labeled items of ``train_src`` (and
    ``eval_src``, the evaluation set, as the holdout when large enough), two of
    ``alsql.models.train``'s sources (``batches(epoch)`` of float inputs and labels, ``cache``:
    whether they are held in memory), from the encoder of ``encoder_row`` (a
    ``model_versions`` row). ``random_arm``: whether training from random weights is an arm
    (``--init auto``; not under ``--init pretrained``). Items held in memory: over
    ``COSTLY_MAX_LABELS`` labels every arm is measured on a stratified sample of that many,
    gathered alone. Items not held in memory: only the head and the random network's probe are
    measured, from features computed batch by batch (one pass over the items). None (the fixed
    rule decides) under torchrun, where each process sees a share of them."""
    from alsql.models.artifacts import load_object
    from alsql.models.fit import distributed

    if distributed()[1] > 1:
        return None
    state = load_object(encoder_row.artifact_uri)["state_dict"]
    arms = ARMS if random_arm else ("head", "finetune")
    kw = dict(make_net=make_net, encoder_state=state, cfg=cfg, arms=arms, seed=cfg.seed,
              max_costly_labels=COSTLY_MAX_LABELS,
              encoder_name=f"encoder model {encoder_row.model_id}", say=say)
    holdout = None
    if eval_src is not None and eval_src.cache:
        holdout = _gather(eval_src)
    # a cached source decodes its items once, here; a streamed one is read once, by the probes below
    if train_src.cache:
        labels = torch.cat([yb for _xb, yb in train_src.batches(0)]).numpy()
        # over the cap, only the stratified sample measure_choice would draw is gathered (the cap's memory)
        keep = stratified_sample(labels, COSTLY_MAX_LABELS, cfg.seed) if len(labels) > COSTLY_MAX_LABELS else None
        x, y = _gather(train_src, keep)
        return measure_choice(y, num_classes, x=x, holdout=holdout, total_labels=len(labels), **kw)
    enc, rnd = probe_nets(make_net, state, cfg.seed)
    feats, rfeats, ys = [], [], []
    for xb, yb in train_src.batches(0):
        feats.append(features_of(enc, xb))
        rfeats.append(features_of(rnd, xb))
        ys.append(yb)
    if holdout is not None:
        holdout = (None, holdout[1], features_of(enc, holdout[0]), features_of(rnd, holdout[0]))
    return measure_choice(torch.cat(ys), num_classes, features=np.concatenate(feats),
                          random_features=np.concatenate(rfeats), holdout=holdout, **kw)
