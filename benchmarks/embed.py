"""Embedding benchmark: ``embed_project`` throughput of ``hf:`` image encoders beside decode alone.

One SQLite database holds ``--items`` ok image items (``--size`` px RGB PNGs). For each encoder
(``tiny``: ViT 32 px, 4 layers of 64; ``small``: ViT 224 px, 6 layers of 384 with patches of 16,
the shape of a DINOv2/ViT-small at half its depth; random weights saved with ``save_pretrained``,
the forward pass costs the same as trained ones), ``--repeats`` times on a fresh project each
(so each run makes a new encoder version and embeds every item):

- ``decode``: reading and decoding the queue at the encoder's input size, no model (the floor);
- ``embed``: ``embed_project`` end to end (queue pages, decode, forward pass, float16 writes),
  without the map;
- ``again``: the same call once everything is embedded (the incremental check: queue empty).

    python benchmarks/embed.py [--items 600] [--size 64] [--repeats 3] [--encoders tiny small]

Prints a table and saves ``benchmarks/reports/embed.json`` (medians; the load average beside
them, the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPORT = Path(__file__).parent / "reports" / "embed.json"
ENCODERS = {
    "tiny": dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=2,
                 intermediate_size=128),
    "small": dict(image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                  intermediate_size=1536),
}


def _save(folder: Path, cfg: dict) -> Path:
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    ViTModel(ViTConfig(**cfg)).save_pretrained(folder)
    s = cfg["image_size"]
    ViTImageProcessor(size={"height": s, "width": s}).save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.migrations import upgrade
    from alsql.models.embed import embed_project, prepare_embed

    tmp = Path(tempfile.mkdtemp(prefix="alsql-embed-bench-"))
    rng = np.random.default_rng(0)
    (tmp / "png").mkdir()
    for i in range(args.items):
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(tmp / "png" / f"{i:06d}.png")
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    ingest(engine, str(tmp / "png"))
    rows = []
    quiet = lambda _line: None  # noqa: E731
    for name in args.encoders:
        spec = f"hf:{_save(tmp / name, ENCODERS[name])}"
        decode_s, embed_s, again_s = [], [], []
        for r in range(args.repeats):
            pname = f"{name}-{r}"
            with write_transaction(engine) as conn:
                create_project(conn, pname, ["a", "b"])
            job = prepare_embed(engine, pname, spec, device="cpu", say=quiet)
            t0 = time.perf_counter()
            n = sum(1 for _ in job._decoded("image", job._rows("image", None, None)))
            decode_s.append(time.perf_counter() - t0)
            assert n == args.items
            t0 = time.perf_counter()
            rep = embed_project(engine, pname, spec, device="cpu", map_method=None, say=quiet)
            embed_s.append(time.perf_counter() - t0)
            assert rep.items == args.items
            t0 = time.perf_counter()
            assert embed_project(engine, pname, spec, device="cpu", map_method=None, say=quiet).items == 0
            again_s.append(time.perf_counter() - t0)
        med = statistics.median
        rows.append({"encoder": name, "input_px": ENCODERS[name]["image_size"], "dim": ENCODERS[name]["hidden_size"],
                     "layers": ENCODERS[name]["num_hidden_layers"], "items": args.items,
                     "decode_items_per_s": round(args.items / med(decode_s), 1),
                     "embed_items_per_s": round(args.items / med(embed_s), 1),
                     "embed_seconds": round(med(embed_s), 3), "again_seconds": round(med(again_s), 3),
                     "repeats": args.repeats})
    engine.dispose()
    table = Table(title=f"alsql embed, {args.items} items of {args.size} px, SQLite, CPU (medians of {args.repeats})")
    for col in ("encoder", "input px", "dim x layers", "decode items/s", "embed items/s", "embed s", "again s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["encoder"], str(r["input_px"]), f"{r['dim']} x {r['layers']}", f"{r['decode_items_per_s']:,}",
                      f"{r['embed_items_per_s']:,}", f"{r['embed_seconds']}", f"{r['again_seconds']}")
    Console().print(table)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"rows": rows, "loadavg": os.getloadavg(), "cores": os.cpu_count(),
                                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    print(f"saved {REPORT}")


if __name__ == "__main__":
    main()
