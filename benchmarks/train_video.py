"""Video training on 40 labeled 2-s segments: decoded once per run vs once per epoch.

Four generated 20-s videos (``--width`` x ``--height``, default 1280 x 720 as a site camera
records, at 15 fps, libx264 with a key frame every 2 s, a moving square on noise) are
ingested into a fresh SQLite database: 40 segments of 2 s, 32 labeled for training and 8
through an evaluation round. ``alsql train``'s code (``alsql.models.train.train_and_record``,
``video_cnn``, 8 frames per segment) then trains the same run twice per repeat, in turn,
after one discarded warm-up run:

- ``once``: the default: the labeled segments are decoded on the first epoch and held in
  memory as uint8 (``TrainConfig.cache_mb``, 1 GiB);
- ``per-epoch``: the baseline, ``cache_mb=0``: every epoch reads and decodes them again (as
  ``alsql train`` did when a view did not fit its cache).

Reported per arm (median over ``--repeats``): wall seconds of the run, seconds per epoch, the
decodes counted (a wrapper around the reader's decoder), and the plan line ``alsql train``
printed with its estimate beside the measured time. Frames are read at ``--image-size`` (32 by
default: on two shared CPU cores the network at 64 px takes minutes per epoch; the decode
cost, which is what differs, is the same at any size).

    python benchmarks/train_video.py [--epochs 6] [--repeats 3] [--image-size 32] [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPORT = Path(__file__).parent / "reports" / "train_video.json"


def encode_video(path: Path, seconds: int, fps: int, width: int, height: int, seed: int) -> Path:
    """A moving-square video on noise (libx264, a key frame every 2 s)."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"g": str(2 * fps), "preset": "ultrafast"}
        base = (rng.random((height, width, 3)) * 60).astype(np.uint8)
        for i in range(seconds * fps):
            a = base.copy()
            x = (i * 7 + seed * 40) % (width - 32)
            a[height // 3 : height // 3 + 32, x : x + 32] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def build(root: Path, width: int, height: int, fps: int):
    """The database, the project and its 40 labeled segments."""
    from sqlalchemy import select

    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.migrations import upgrade
    from alsql.loaders.ingest import ingest
    from alsql.models.select import create_round
    from alsql.pipelines.loop import answer_round
    from alsql.schema import items

    folder = root / "cams"
    folder.mkdir()
    for v in range(4):
        encode_video(folder / f"cam-{v}.mp4", 20, fps, width, height, seed=v)
    url = f"sqlite:///{root / 'alsql.db'}"
    upgrade(url)
    engine = make_engine(url)
    report = ingest(engine, str(folder))
    with write_transaction(engine) as conn:
        proj = create_project(conn, "cams", ["quiet", "busy"])
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.start_s).where(items.c.status == "ok")).all()
    oracle = {r.item_id: int(round(r.start_s / 2)) % 2 for r in rows}
    answer_round(engine, proj, create_round(engine, proj.project_id, "random", 8, purpose="evaluation", seed=1), oracle)
    answer_round(engine, proj, create_round(engine, proj.project_id, "random", 32, seed=2), oracle)
    return engine, proj, report.new


def run_arm(engine, proj, cfg, root: Path) -> dict:
    from alsql.loaders import media_rows
    from alsql.models.train import train_and_record

    seen: Counter = Counter()
    real = media_rows.decode_item

    def counting(uri, spec):
        seen[uri] += 1
        return real(uri, spec)

    said: list[str] = []
    media_rows.decode_item = counting
    try:
        t0 = time.perf_counter()
        out = train_and_record(engine, proj.project_id, cfg, artifacts=str(root / "art"), say=said.append)
        wall = time.perf_counter() - t0
    finally:
        media_rows.decode_item = real
    plan = next((s for s in said if s.startswith("planned ")), None)
    return {"wall_s": round(wall, 2), "fit_s": out.fit.seconds, "epochs": out.fit.epochs_run,
            "per_epoch_s": round(out.fit.seconds / max(out.fit.epochs_run, 1), 3),
            "decodes": sum(seen.values()), "segments_decoded": len(seen), "plan": plan}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--image-size", type=int, default=32)
    args = ap.parse_args()
    import torch

    from alsql.models.fit import TrainConfig

    torch.set_num_threads(2)
    console = Console()
    cfg = TrainConfig(epochs=args.epochs, min_steps=0, patience=1000, evaluations=args.epochs, device="cpu",
                      image_size=args.image_size)
    arms = {"once": cfg, "per-epoch": replace(cfg, cache_mb=0)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        engine, proj, segments = build(root, args.width, args.height, args.fps)
        run_arm(engine, proj, replace(cfg, epochs=1, evaluations=1), root)  # warm-up: imports, first allocations
        runs: dict[str, list[dict]] = {a: [] for a in arms}
        for r in range(args.repeats):
            for arm, c in arms.items():
                runs[arm].append(run_arm(engine, proj, c, root))
                console.print(f"repeat {r} {arm}: {runs[arm][-1]}", markup=False)
        engine.dispose()
    report = {"segments": segments, "labeled": 40, "epochs": args.epochs, "image_size": args.image_size,
              "source": f"4 videos, 20 s, {args.width}x{args.height}, {args.fps} fps, libx264",
              "repeats": args.repeats, "arms": {}}
    table = Table("arm", "wall s", "s per epoch", "decodes", "plan printed", title=(
        f"alsql train, 40 labeled 2-s segments, {args.epochs} epochs at {args.image_size} px (median of "
        f"{args.repeats})"))
    for arm, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "fit_s", "per_epoch_s", "decodes")}
        report["arms"][arm] = med | {"plan": rs[-1]["plan"], "runs": rs}
        table.add_row(arm, f"{med['wall_s']:.1f}", f"{med['per_epoch_s']:.2f}", f"{med['decodes']:.0f}",
                      rs[-1]["plan"] or "")
    once, base = report["arms"]["once"], report["arms"]["per-epoch"]
    report["speedup"] = round(base["wall_s"] / once["wall_s"], 3)
    # what a 200-epoch run (the --min-steps 200 plan of 40 labels) costs at each arm's measured epoch time
    report["epochs_200_minutes"] = {a: round(200 * v["per_epoch_s"] / 60, 1) for a, v in report["arms"].items()}
    console.print(table)
    console.print(f"speed-up {report['speedup']:.2f}x; 200 epochs at these rates: "
                  f"{report['epochs_200_minutes']['once']} vs {report['epochs_200_minutes']['per-epoch']} min")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1))
    console.print(f"report: {REPORT}")


if __name__ == "__main__":
    main()
