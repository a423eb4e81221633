"""Input size on small defects: what the part-image task reaches at 32, 64, 96 and 128 px.

The parts of ``alsql.pipelines.scenarios.parts`` (ok, scratch, dent; about 30 % defective,
each defect under 0.5 % of the image) are drawn at 256 px and read at each size as
``alsql train`` reads an image (PIL bilinear resize, ``alsql.media.image``). Per seed: 600
parts; the same ``--labels`` of them train (the label budget), 100 are the evaluation set
that keeps the best checkpoint (balanced accuracy, as ``alsql train``), 300 are the test set
the figures come from. Training is ``alsql.models.fit.fit`` as ``alsql train`` runs it (``cnn``,
the default loss and flips, best checkpoint by balanced accuracy) on a schedule two CPU cores can
afford for 12 runs (default 8 epochs raised to 40 steps of 32; ``--epochs``, ``--min-steps``,
``--batch-size``), the same at every size. The report is rewritten after every run (``done``
counts the runs), so a run cut short still reports the seeds it finished.

Reports per size the mean and std over seeds of balanced accuracy, defect recall (scratch
and dent items called either defect), per-class recall and the training seconds; the size
rule of ``alsql.models.inputs`` follows it.

    python benchmarks/input_size.py [--seeds 3] [--labels 120] [--sizes 32 64 96 128] [--out REPORT.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from alsql.models.fit import TrainConfig, fit
from alsql.models.metrics import balanced_accuracy, per_class_recall
from alsql.models.networks import build_network
from alsql.pipelines.scenarios.parts import PART_CLASSES, make_parts

REPORT = Path(__file__).parent / "reports" / "input_size.json"


def at_size(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` -> float32 ``(n, 3, size, size)`` in [0, 1], as ``alsql train`` reads them."""
    out = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in images])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def _batches(x, y, seed: int, batch_size: int):
    def batches(epoch):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for s in range(0, len(y), batch_size):
            j = order[s : s + batch_size]
            yield x[j], y[j]

    return batches, -(-len(y) // batch_size)


def _chunks(x, y, n=128):
    return [(x[s : s + n], y[s : s + n]) for s in range(0, len(y), n)]


def run(size: int, seed: int, images, labels, n_labels: int, cfg: TrainConfig) -> dict:
    x = at_size(images, size)
    y = torch.from_numpy(labels)
    tr, ev, te = slice(0, n_labels), slice(n_labels, n_labels + 100), slice(n_labels + 100, n_labels + 400)
    torch.manual_seed(seed)
    net = build_network("cnn", len(PART_CLASSES), 3)
    batches, steps = _batches(x[tr], y[tr], seed, cfg.batch_size)
    t0 = time.perf_counter()
    res = fit(net, batches, lambda: _chunks(x[ev], y[ev]), replace(cfg, seed=seed), len(PART_CLASSES), steps)
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(xb).argmax(1) for xb, _ in _chunks(x[te], y[te])]).numpy()
    truth = labels[te]
    cm = np.zeros((3, 3), dtype=np.int64)
    np.add.at(cm, (truth, pred), 1)
    defect = truth > 0
    return {"balanced_accuracy": balanced_accuracy(cm), "recall": [float(r) for r in per_class_recall(cm)],
            "defect_recall": float(np.mean(pred[defect] > 0)), "ok_called_defect": float(np.mean(pred[~defect] > 0)),
            "seconds": round(seconds, 2), "epochs": res.epochs_run}


def _ms(v):
    return [round(float(np.mean(v)), 4), round(float(np.std(v)), 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--labels", type=int, default=120)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--min-steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--source", type=int, default=256, help="pixels per side the parts are drawn at")
    ap.add_argument("--out", type=Path, default=REPORT, help="the JSON report")
    args = ap.parse_args()
    torch.set_num_threads(2)
    # alsql train's network, loss and checkpoint rule on a shorter schedule (two shared CPU cores):
    # --epochs / --min-steps / --batch-size of the command line
    cfg = TrainConfig(device="cpu", epochs=args.epochs, min_steps=args.min_steps, batch_size=args.batch_size)
    report: dict = {"seeds": args.seeds, "labels": args.labels, "source_px": args.source,
                    "config": cfg.as_params(), "sizes": {}}
    runs: dict[int, list[dict]] = {s: [] for s in args.sizes}
    for seed in range(args.seeds):
        images, labels = make_parts(args.labels + 400, seed, args.source)
        for size in args.sizes:
            r = run(size, seed, images, labels, args.labels, cfg)
            runs[size].append(r)
            print(f"seed {seed} size {size}: balanced accuracy {r['balanced_accuracy']:.3f}, "
                  f"defect recall {r['defect_recall']:.3f}, {r['seconds']:.0f} s", flush=True)
            report["done"] = sum(len(v) for v in runs.values())
            _summarise(report, runs, args)
    _summarise(report, runs, args, show=True)


def _summarise(report: dict, runs: dict[int, list[dict]], args, show: bool = False) -> None:
    table = Table("px", "balanced accuracy", "defect recall", "scratch recall", "dent recall", "ok called defect",
                  "train s", title=f"part images, {args.labels} labels, {args.seeds} seeds (mean ± std)")
    for size, rs in runs.items():
        if not rs:
            continue
        out = {"balanced_accuracy": _ms([r["balanced_accuracy"] for r in rs]),
               "defect_recall": _ms([r["defect_recall"] for r in rs]),
               "recall": {c: _ms([r["recall"][k] for r in rs]) for k, c in enumerate(PART_CLASSES)},
               "ok_called_defect": _ms([r["ok_called_defect"] for r in rs]),
               "seconds": _ms([r["seconds"] for r in rs]), "per_seed": rs}
        report["sizes"][str(size)] = out
        table.add_row(str(size), *("{:.3f} ± {:.3f}".format(*v) for v in (
            out["balanced_accuracy"], out["defect_recall"], out["recall"]["scratch"], out["recall"]["dent"],
            out["ok_called_defect"])), "{:.0f}".format(out["seconds"][0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    if show:
        console = Console()
        console.print(table)
        console.print(f"report: {args.out}")


if __name__ == "__main__":
    main()
