"""One batch through a network: probabilities, embeddings and (optionally) BALD.

Shared by ``alsql infer`` and the label-efficiency benchmark so both score items
the same way. ``mc_seed`` makes the MC-dropout draws a function of the seed alone
(``alsql infer`` seeds each batch from the model id and the batch's first item id,
``mc_seed_for``), so scoring the same model twice gives the same BALD values.
"""

from __future__ import annotations

import numpy as np
import torch

from alsql.models.align import stored_columns
from alsql.models.strategies.scores import bald as bald_score
from alsql.models.strategies.scores import score_columns

__all__ = ["predict_batch", "mc_seed_for", "write_scored"]


def mc_seed_for(model_id: int, first_item_id: int, seed: int = 0) -> int:
    """The MC-dropout seed of one batch: a 63-bit hash of (seed, model id, first item id)."""
    words = np.random.SeedSequence([int(seed), int(model_id), int(first_item_id)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


@torch.no_grad()
def predict_batch(net, x: torch.Tensor, mc_samples: int = 0, amp: bool = False,
                  mc_seed: int | None = None) -> dict[str, np.ndarray]:
    """``x`` ``(B, C, H, W)`` on the net's device -> ``probs (B, K)``, ``embeddings (B, D)``,
    and ``bald (B,)`` from ``mc_samples`` MC-dropout passes of the head when > 0.
    ``mc_seed`` (when not None) seeds the dropout masks in a forked RNG: the same seed gives
    the same BALD, and the global torch RNG is left as it was.

    The network is left in eval mode. float32 numpy arrays (bald float64). A network with
    ``decision_offsets`` (the collapse guard, ``alsql.models.align``) also gives ``class_id``
    ``(B,)`` int64: its aligned decision, where the argmax of ``probs`` is the network's own.
    """
    net.eval()
    ctx = torch.autocast(x.device.type, dtype=torch.float16 if x.device.type == "cuda" else torch.bfloat16) \
        if amp else torch.autocast(x.device.type, enabled=False)
    with ctx:
        z = net.embed(x)
        logits = net.head(z)
    z, logits = z.float(), logits.float()
    out = {
        "probs": torch.softmax(logits, dim=1).cpu().numpy().astype(np.float32),
        "embeddings": z.cpu().numpy().astype(np.float32),
    }
    off = getattr(net, "decision_offsets", None)
    if off is not None:  # the collapse guard's aligned decision (alsql.models.align); probs stay the network's own
        out["class_id"] = (logits + off.to(logits.device)).argmax(1).cpu().numpy().astype(np.int64)
    if mc_samples > 0:
        devices = [x.device] if x.device.type == "cuda" else []
        net.mc_dropout(True)
        try:
            with torch.random.fork_rng(devices=devices, enabled=mc_seed is not None):
                if mc_seed is not None:
                    torch.manual_seed(mc_seed)
                samples = torch.stack([torch.softmax(net.head(z), dim=1) for _ in range(mc_samples)])
        finally:
            net.mc_dropout(False)
        out["bald"] = bald_score(samples.cpu().numpy())
    return out


def write_scored(writer, item_ids: np.ndarray, out: dict) -> None:
    """Write one scored batch (``predict_batch``'s or a head's ``out``: probs, optional bald and the
    collapse guard's class) to a predictions ``PredictionWriter``: the stored columns of
    ``alsql.models.align.stored_columns`` (class_id is the guard's decision, network_class_id the
    network's own argmax)."""
    cols = stored_columns(score_columns(out["probs"]), out)
    writer.write(item_ids=item_ids, class_id=cols["class_id"], confidence=cols["confidence"], margin=cols["margin"],
                 entropy=cols["entropy"], bald=out.get("bald"), probs=out["probs"],
                 network_class_id=cols["network_class_id"])
