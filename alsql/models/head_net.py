"""The head network (linear or MLP over stored vectors), its training loop and its scoring.

Used by ``alsql.models.heads`` (which keeps torch out of the modules that only ask whether a
model is a head). Shapes: vectors ``(N, D)`` float32, probabilities ``(N, C)`` float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy import Engine, select
from torch import nn

from alsql.errors import AlsqlError
from alsql.schema import model_versions

__all__ = ["HEADS", "MLP_HIDDEN", "MLP_DROPOUT", "HeadNet", "fit_head", "load_head", "score_vectors", "check_bald"]

HEADS = ("linear", "mlp")
MLP_HIDDEN = 256
MLP_DROPOUT = 0.2


class HeadNet(nn.Module):
    """``linear``: ``fc(x)``; ``mlp``: ``fc(dropout(relu(hidden(x))))``. Input ``(B, D)`` float32
    vectors; the input standardisation is folded into the first layer when saved."""

    def __init__(self, head: str, dim: int, num_classes: int, hidden: int = MLP_HIDDEN, dropout: float = MLP_DROPOUT):
        super().__init__()
        if head not in HEADS:
            raise AlsqlError(f"--head {head!r}: expected one of {', '.join(HEADS)}")
        self.kind = head
        self.hidden = nn.Linear(dim, hidden) if head == "mlp" else None
        self.drop = nn.Dropout(dropout) if head == "mlp" else None
        self.fc = nn.Linear(hidden if head == "mlp" else dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the last layer sees: the vector itself (linear) or the hidden layer (MLP)."""
        return x if self.hidden is None else torch.relu(self.hidden(x))

    def logits(self, z: torch.Tensor, dropout: bool = False) -> torch.Tensor:
        if self.drop is not None and dropout:
            z = nn.functional.dropout(z, self.drop.p, training=True)
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        return self.fc(self.drop(z) if self.drop is not None else z)

    def fold(self, mean: torch.Tensor, scale: float) -> None:
        """Absorb ``(x - mean) / scale`` into the first layer: then it takes raw vectors."""
        first = self.hidden if self.hidden is not None else self.fc
        with torch.no_grad():
            first.weight.div_(scale)
            first.bias.sub_(first.weight @ mean)

@dataclass
class FitOutcome:
    state: dict
    cm: np.ndarray | None
    epochs: int
    best_epoch: int
    train_loss: float


def fit_head(net: HeadNet, x: torch.Tensor, y: torch.Tensor, ev: dict | None, cw: list | None, *, lr: float,
             batch_size: int, epochs: int, patience: int, min_epochs: int, seed: int,
             adjust: list | None = None) -> FitOutcome:
    """Train ``net`` on standardised vectors ``x`` ``(N, D)``, labels ``y`` ``(N,)`` with class-weighted
    cross-entropy (``cw``), or logit-adjusted (``adjust``: offsets added to the logits in training,
    ``alsql.models.metrics.logit_adjustment``); keep the best epoch by ``selection_key`` on ``ev`` (``x``, ``y``, inclusion
    weights ``w``), else by training loss. One intra-op thread: the ops are tiny, and threads
    waiting on each other at every op cost far more than they compute (84 s against 8 s for 960
    steps on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(net, x, y, ev, cw, lr=lr, batch_size=batch_size, epochs=epochs, patience=patience,
                    min_epochs=min_epochs, seed=seed, adjust=adjust)
    finally:
        torch.set_num_threads(threads)


def _fit(net: HeadNet, x: torch.Tensor, y: torch.Tensor, ev: dict | None, cw: list | None, *, lr: float,
         batch_size: int, epochs: int, patience: int, min_epochs: int, seed: int,
         adjust: list | None = None) -> FitOutcome:
    from alsql.models.metrics import confusion_matrix, selection_key

    c = net.fc.out_features
    weight = None if cw is None else torch.tensor([0.0 if v is None else float(v) for v in cw])
    offsets = None if adjust is None else torch.tensor([float(v) for v in adjust])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    best, best_key, best_cm, best_epoch, stale, loss_sum = None, (-1.0, -1.0, -math.inf), None, -1, 0, 0.0
    done = 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for s in range(0, n, batch_size):
            j = order[s : s + batch_size]
            opt.zero_grad(set_to_none=True)
            logits = net(x[j])
            loss = nn.functional.cross_entropy(logits if offsets is None else logits + offsets, y[j], weight=weight)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(j)
        sched.step()
        done = epoch + 1
        net.eval()
        if ev is not None:
            with torch.no_grad():
                logits = net(ev["x"])
                losses = nn.functional.cross_entropy(logits, ev["y"], reduction="none").numpy()
            cm = confusion_matrix(ev["y"].numpy(), logits.argmax(1).numpy(), c, ev["w"])
            key = selection_key(cm, float((losses * ev["w"]).sum()))
        else:
            cm, key = None, (-1.0, -1.0, -loss_sum / max(n, 1))
        if key > best_key:
            best_key, best, best_cm, best_epoch, stale = key, {k: v.clone() for k, v in net.state_dict().items()}, \
                cm, epoch, 0
        else:
            stale += 1
        if stale >= patience and done >= min_epochs:
            break
    net.load_state_dict(best)
    return FitOutcome(best, best_cm, done, best_epoch, loss_sum / max(n, 1))


def load_head(engine: Engine, model_id: int) -> tuple[HeadNet, object]:
    """``(head network in eval mode, model_versions row)``; AlsqlError when ``model_id`` is no head."""
    from alsql.models.artifacts import load_object

    with engine.connect() as conn:
        row = conn.execute(select(model_versions).where(model_versions.c.model_id == model_id)).first()
    if row is None or not str(row.architecture).startswith("head:"):
        raise AlsqlError(f"--model {model_id}: expected a head model (architecture head:linear or head:mlp)")
    obj = load_object(row.artifact_uri) if row.artifact_uri else None
    if obj is None:
        raise AlsqlError(f"model {model_id}: artifact {row.artifact_uri} is missing from its store")
    m = obj["meta"]
    net = HeadNet(m["head"], m["dim"], m["num_classes"], m["hidden"], m["dropout"])
    net.load_state_dict(obj["state_dict"])
    if m.get("decision_offsets") is not None:  # the collapse guard's (alsql.models.align)
        from alsql.models.align import set_offsets

        set_offsets(net, m["decision_offsets"])
    net.eval()
    return net, row


@torch.no_grad()
def score_vectors(net: HeadNet, x: np.ndarray, bald: int = 0, mc_seed: int | None = None) -> dict[str, np.ndarray]:
    """``probs (N, C)`` float32 of vectors ``x`` ``(N, D)``, and ``bald (N,)`` from ``bald`` MC-dropout
    passes of an MLP head (seeded by ``mc_seed`` in a forked RNG); ``class_id (N,)`` when the head
    has the collapse guard's ``decision_offsets``."""
    from alsql.models.strategies.scores import bald as bald_score

    z = net.features(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    logits = net.fc(z)
    out = {"probs": torch.softmax(logits, dim=1).numpy()}
    off = getattr(net, "decision_offsets", None)
    if off is not None:  # the collapse guard's aligned decision (alsql.models.align)
        out["class_id"] = (logits + off).argmax(1).numpy().astype(np.int64)
    if bald:
        with torch.random.fork_rng(devices=[], enabled=mc_seed is not None):
            if mc_seed is not None:
                torch.manual_seed(mc_seed)
            samples = torch.stack([torch.softmax(net.logits(z, dropout=True), dim=1) for _ in range(bald)])
        out["bald"] = bald_score(samples.numpy())
    return out


def check_bald(net: HeadNet, model_id: int, bald: int) -> None:
    """Refuse ``bald`` MC-dropout passes on a head without dropout (a linear head)."""
    if bald and net.drop is None:
        raise AlsqlError(f"--bald {bald}: model {model_id} is a linear head (no dropout); BALD needs an MLP head "
                         f"(`alsql train --head mlp`)")


