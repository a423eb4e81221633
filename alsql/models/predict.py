"""One batch through a network: probabilities, embeddings and (optionally) BALD.

Shared by ``alsql infer`` and the label-efficiency benchmark so both score items
the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from alsql.models.strategies.scores import bald as bald_score

__all__ = ["predict_batch"]


@torch.no_grad()
def predict_batch(net, x: torch.Tensor, mc_samples: int = 0, amp: bool = False) -> dict[str, np.ndarray]:
    """``x`` ``(B, C, H, W)`` on the net's device -> ``probs (B, K)``, ``embeddings (B, D)``,
    and ``bald (B,)`` from ``mc_samples`` MC-dropout passes of the head when > 0.

    The network is left in eval mode. float32 numpy arrays (bald float64).
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
    if mc_samples > 0:
        net.mc_dropout(True)
        try:
            samples = torch.stack([torch.softmax(net.head(z), dim=1) for _ in range(mc_samples)])
        finally:
            net.mc_dropout(False)
        out["bald"] = bald_score(samples.cpu().numpy())
    return out
