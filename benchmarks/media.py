"""Media benchmark: decoding video segments and audio clips in the loaders, and its memory.

Each figure sits beside a baseline measured in the same run, on the same files:

1. 2-s video segments/s decoded to 8 frames of 64x64 through ``DataLoader(num_workers=2)``
   over ``SqlImageDataset`` (the project's SQL view, seeking in each source) vs a plain
   loop that decodes the same segments with PyAV directly (open, seek, decode forward,
   resize the same 8 frames; one torch thread, as in a worker). Target: >= 0.9x. Also
   shown: the same direct decode as a plain list dataset in ``DataLoader(num_workers=2)``.
2. 1-s audio clips/s (wav at 22,050 Hz -> 16 kHz log-mel, 64 bands) the same way, the
   baseline reading with soundfile directly. Target: >= 0.9x.
3. Peak RSS (VmHWM of the loading process plus its two workers) over every segment of a
   small set of files and of one with ten times as many files, each ten times as long.
   Target: growth at most 50 MB.

Files are generated (PyAV, soundfile); copies of one encoded video are remuxed with a
different title, so their sha256 differ and each is its own source.

    python benchmarks/media.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPORT = Path(__file__).parent / "reports" / "media.json"
FRAMES, SIZE, SR, N_MELS = 8, 64, 16000, 64


def encode_video(path: Path, seconds: int, fps: int, width: int, height: int) -> Path:
    """A moving-square video (libx264, a key frame every 2 s)."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"g": str(2 * fps), "preset": "ultrafast"}
        base = (rng.random((height, width, 3)) * 60).astype(np.uint8)
        for i in range(seconds * fps):
            a = base.copy()
            x = (i * 3) % (width - 16)
            a[height // 3 : height // 3 + 16, x : x + 16] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def remux(src: Path, dst: Path, title: str) -> None:
    """A copy of ``src`` with another title tag (other bytes, same frames), without re-encoding."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        o.metadata["title"] = title
        vin = i.streams.video[0]
        vout = o.add_stream_from_template(vin)
        for pkt in i.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            o.mux(pkt)


def make_videos(folder: Path, files: int, seconds: int, fps: int = 25, width: int = 160, height: int = 120) -> None:
    folder.mkdir(parents=True)
    base = encode_video(folder.parent / f"{folder.name}-base.mp4", seconds, fps, width, height)
    for k in range(files):
        remux(base, folder / f"v{k:03d}.mp4", f"copy {k}")
    base.unlink()


def make_sounds(folder: Path, files: int, seconds: int, sr: int = 22050) -> None:
    import soundfile as sf

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    t = np.arange(seconds * sr) / sr
    for k in range(files):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 20 * k) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(str(folder / f"a{k:03d}.wav"), wave.astype(np.float32), sr)


def ingest_folder(url: str, folder: Path) -> int:
    """A migrated SQLite database holding the folder's segments and one project; the project id."""
    from alsql.catalog import create_project
    from alsql.db import make_engine, write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.migrations import upgrade

    upgrade(url)
    engine = make_engine(url)
    try:
        ingest(engine, str(folder))
        with write_transaction(engine) as conn:
            return create_project(conn, "bench", ["a", "b"]).project_id
    finally:
        engine.dispose()


def segments(url: str) -> list[tuple[str, float, float]]:
    from sqlalchemy import select

    from alsql.db import make_engine
    from alsql.stores import uri_to_path
    from alsql.media.kinds import parse_fragment
    from alsql.schema import items

    engine = make_engine(url)
    with engine.connect() as conn:
        uris = conn.execute(select(items.c.uri).where(items.c.status == "ok").order_by(items.c.item_id)).scalars().all()
    engine.dispose()
    out = []
    for u in uris:
        src, a, b = parse_fragment(u)
        out.append((str(uri_to_path(src)), a, b))
    return out


# --- the baselines: the same libraries, called directly --------------------------------------


def direct_video(path: str, start: float, end: float):
    """PyAV directly: open, seek, decode forward, the frames shown at 8 evenly spaced times."""
    import av
    import torch

    with av.open(path) as c:
        s = c.streams.video[0]
        dt = 1.0 / float(s.average_rate)
        targets = start + (np.arange(FRAMES) + 0.5) * (end - start) / FRAMES
        c.seek(int(start / s.time_base), stream=s, backward=True)
        out, i = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8), 0
        for frame in c.decode(s):
            t = frame.time
            if t + dt <= targets[i]:
                continue
            arr = frame.reformat(width=SIZE, height=SIZE, format="rgb24").to_ndarray()
            while i < FRAMES and targets[i] < t + dt:
                out[i], i = arr, i + 1
            if i == FRAMES:
                break
        out[i:] = arr
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def direct_audio(path: str, start: float, end: float):
    """soundfile directly: seek, read the clip; then the same resampling and log-mel."""
    import soundfile as sf

    from alsql.media.audio import log_mel, resample

    with sf.SoundFile(path) as f:
        f.seek(int(round(start * f.samplerate)))
        data = f.read(int(round((end - start) * f.samplerate)), dtype="float32", always_2d=True)
        sr = f.samplerate
    wave = resample(data.mean(axis=1), sr, SR)
    n = int(round((end - start) * SR))
    return log_mel(np.pad(wave, (0, max(0, n - len(wave))))[:n], SR, N_MELS)


class ListDataset:
    def __init__(self, segs, fn):
        self.segs, self.fn = segs, fn

    def __len__(self):
        return len(self.segs)

    def __getitem__(self, i):
        return self.fn(*self.segs[i]), 0, i


def spec_for(kind: str):
    from alsql.media.kinds import MediaSpec

    if kind == "video":
        return MediaSpec(kind="video", image_size=SIZE, frames=FRAMES)
    return MediaSpec(kind="audio", sample_rate=SR, n_mels=N_MELS, seconds=1.0)


def rates(url: str, pid: int, kind: str, repeats: int) -> dict:
    from torch.utils.data import DataLoader

    from alsql.loaders.datasets import SqlImageDataset

    segs = segments(url)
    fn = direct_video if kind == "video" else direct_audio
    n = len(segs)

    def loop():
        # One torch thread, as in a DataLoader worker: with torch's default threads a loop on a
        # busy 2-core machine runs its STFTs many times slower, which would flatter the loaders.
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            fn(*segs[0])  # imports and first-call set-up outside the timing, as workers are warm too
            t = time.perf_counter()
            for seg in segs:
                fn(*seg)
            return n / (time.perf_counter() - t)
        finally:
            torch.set_num_threads(threads)

    def loader(ds, **kw):
        t = time.perf_counter()
        seen = sum(len(b[2]) for b in DataLoader(ds, batch_size=16, num_workers=2, **kw))
        assert seen == n, (seen, n)
        return n / (time.perf_counter() - t)

    out = {"plain_loop": [], "list_dataset_2_workers": [], "sql_dataset_2_workers": []}
    for _ in range(repeats):  # interleaved: each sees the same machine load
        out["plain_loop"].append(loop())
        out["list_dataset_2_workers"].append(loader(ListDataset(segs, fn), shuffle=True))
        out["sql_dataset_2_workers"].append(
            loader(SqlImageDataset(url, pid, view="unlabeled_pool", seed=0, media=spec_for(kind))))
    res = {k: {"per_s": round(statistics.median(v), 1), "runs": [round(r, 1) for r in v]} for k, v in out.items()}
    res["segments"] = n
    res["ratio_vs_plain_loop"] = round(res["sql_dataset_2_workers"]["per_s"] / res["plain_loop"]["per_s"], 3)
    res["ratio_vs_list_dataset"] = round(
        res["sql_dataset_2_workers"]["per_s"] / res["list_dataset_2_workers"]["per_s"], 3)
    return res


RSS_CHILD = r"""
import sys, time
url, pid, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, sys.argv[4])
from torch.utils.data import DataLoader
from alsql.loaders.datasets import SqlImageDataset
from media import spec_for

def hwm(pid="self"):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024

ds = SqlImageDataset(url, pid, view="unlabeled_pool", seed=0, media=spec_for(kind))
dl = DataLoader(ds, batch_size=16, num_workers=2, persistent_workers=True)
t = time.perf_counter()
it = iter(dl)
n = sum(len(b[2]) for b in it)
workers = [hwm(w.pid) for w in it._workers]
print(n, hwm(), max(workers), hwm() + sum(workers), time.perf_counter() - t)
"""


def peak_rss(url: str, pid: int, kind: str) -> dict:
    here = str(Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, url, str(pid), kind, here],
                         capture_output=True, text=True, check=True)
    n, main_mb, worker_mb, tree_mb, s = out.stdout.split()
    return {"segments": int(n), "main_mb": round(float(main_mb), 1), "worker_max_mb": round(float(worker_mb), 1),
            "tree_mb": round(float(tree_mb), 1), "seconds": round(float(s), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer and shorter files, one repeat")
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()
    # (files, seconds) for the rates; the memory sets are (files, seconds) and ten times both.
    video_set, audio_set = ((6, 20), (6, 40)) if args.quick else ((12, 40), (12, 80))
    mem_video, mem_audio = ((3, 8), (3, 10)) if args.quick else ((4, 10), (4, 12))
    repeats = 1 if args.quick else args.repeats

    from rich.console import Console
    from rich.table import Table

    report: dict = {"quick": args.quick, "load_average_1m_at_start": round(os.getloadavg()[0], 2),
                    "cpus": os.cpu_count(), "rates": {}, "memory": {}}
    tmp = Path(tempfile.mkdtemp(prefix="alsql-media-bench-"))
    try:
        for kind, (files, seconds) in (("video", video_set), ("audio", audio_set)):
            folder = tmp / f"{kind}-rates"
            (make_videos if kind == "video" else make_sounds)(folder, files, seconds)
            url = f"sqlite:///{tmp / f'{kind}-rates.db'}"
            pid = ingest_folder(url, folder)
            report["rates"][kind] = {"files": files, "seconds_each": seconds, **rates(url, pid, kind, repeats)}
        for kind, (files, seconds) in (("video", mem_video), ("audio", mem_audio)):
            rows = {}
            for scale in (1, 10):
                folder = tmp / f"{kind}-mem-{scale}"
                maker = make_videos if kind == "video" else make_sounds
                kw = {"fps": 10, "width": 96, "height": 72} if kind == "video" else {}
                maker(folder, files * scale, seconds * scale, **kw)
                url = f"sqlite:///{tmp / f'{kind}-mem-{scale}.db'}"
                pid = ingest_folder(url, folder)
                rows[f"x{scale}"] = {"files": files * scale, "seconds_each": seconds * scale,
                                     **peak_rss(url, pid, kind)}
                shutil.rmtree(folder)
            rows["growth_mb"] = round(rows["x10"]["tree_mb"] - rows["x1"]["tree_mb"], 1)
            report["memory"][kind] = rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    r, m = report["rates"], report["memory"]
    report["acceptance"] = {
        "video_ratio": r["video"]["ratio_vs_plain_loop"], "video_ok": r["video"]["ratio_vs_plain_loop"] >= 0.9,
        "audio_ratio": r["audio"]["ratio_vs_plain_loop"], "audio_ok": r["audio"]["ratio_vs_plain_loop"] >= 0.9,
        "video_rss_growth_mb": m["video"]["growth_mb"], "audio_rss_growth_mb": m["audio"]["growth_mb"],
        "rss_ok": max(m["video"]["growth_mb"], m["audio"]["growth_mb"]) <= 50,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }

    console = Console()
    t = Table(title=f"Decode throughput, segments/s (medians of {repeats}; {os.cpu_count()} CPUs)")
    for c in ("what", "segments", "SqlImageDataset, 2 workers", "plain loop (direct)", "ratio",
              "list dataset, 2 workers", "ratio"):
        t.add_column(c, justify="right")
    for kind, label in (("video", "2-s video -> 8x64x64"), ("audio", "1-s audio -> log-mel")):
        x = r[kind]
        t.add_row(label, str(x["segments"]), f"{x['sql_dataset_2_workers']['per_s']:,}",
                  f"{x['plain_loop']['per_s']:,}", f"{x['ratio_vs_plain_loop']:.2f}",
                  f"{x['list_dataset_2_workers']['per_s']:,}", f"{x['ratio_vs_list_dataset']:.2f}")
    console.print(t)
    t = Table(title="Peak RSS of the loading process + 2 workers (VmHWM, MB)")
    for c in ("kind", "files x s", "segments", "main", "worker max", "tree", "files x s (x10 x10)", "segments",
              "tree", "growth"):
        t.add_column(c, justify="right")
    for kind in ("video", "audio"):
        a, b = m[kind]["x1"], m[kind]["x10"]
        t.add_row(kind, f"{a['files']} x {a['seconds_each']}", str(a["segments"]), str(a["main_mb"]),
                  str(a["worker_max_mb"]), str(a["tree_mb"]), f"{b['files']} x {b['seconds_each']}",
                  str(b["segments"]), str(b["tree_mb"]), str(m[kind]["growth_mb"]))
    console.print(t)
    console.print(report["acceptance"])
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"report: {args.report}")


if __name__ == "__main__":
    main()
