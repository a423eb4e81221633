"""How a decoder opens a local media file: throughput of three ways, on the same files, one run.

The decoders open a local file confined (``alsql.media.rangeio.open_media``: a regular
file reached through no symbolic link, checked on its descriptor). What they then hand to
PyAV and soundfile is measured here, through the loaders' own decode (``decode_item``):

- ``path``: the file's path, as before the confinement (the decoder opens it by name and
  follows whatever link is there now): the baseline;
- ``file``: the checked Python file object (every read goes through Python);
- ``proc_fd``: ``/proc/self/fd/N`` of the checked descriptor (the decoder reads the very
  file that was checked, natively).

Workloads: 2-s video segments to 8 frames of 64x64 in key order (the loaders' container
cache: one open per file), the same with a cold open per segment (a thumbnail, a first
touch), the same from a 640x360 video (more bytes read per segment), 1-s WAV clips
(22,050 Hz -> 16 kHz log-mel, soundfile) and 1-s MP3 clips (PyAV). Each way's items per
second (wall) and CPU milliseconds per item (process time: less disturbed by other work on
a shared machine), the median of ``--repeats`` runs, the three ways interleaved in each run.

    python benchmarks/media_open.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPORT = Path(__file__).parent / "reports" / "media_open.json"
WAYS = ("path", "file", "proc_fd")


def make_files(folder: Path) -> dict[str, list[str]]:
    """Three 20-s videos (160x160, 25 fps), one 10-s 640x360 video, two 30-s WAVs at 22,050 Hz,
    one 20-s MP3: segment uris per workload."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.media_support import make_tone, make_video

    from alsql.media.kinds import fragment_uri
    from alsql.stores import path_to_uri

    videos = [make_video(folder / f"cam-{i}.mp4", seconds=20, fps=25, size=160, pattern="left", seed=i)
              for i in range(3)]
    wavs = [make_tone(folder / f"pump-{i}.wav", seconds=30, sr=22050, noise=0.1, seed=i) for i in range(2)]
    mp3 = make_tone(folder / "fan.mp3", seconds=20, sr=22050, noise=0.1)
    large = _video(folder / "road.mp4", 10, 640, 360)
    return {
        "video": [fragment_uri(path_to_uri(v), t, t + 2) for v in videos for t in range(0, 20, 2)],
        "large": [fragment_uri(path_to_uri(large), t, t + 2) for t in range(0, 10, 2)] * 2,
        "wav": [fragment_uri(path_to_uri(w), t, t + 1) for w in wavs for t in range(0, 30)],
        "mp3": [fragment_uri(path_to_uri(mp3), t, t + 1) for t in range(0, 19)],
    }


def _video(path: Path, seconds: int, width: int, height: int) -> Path:
    """A noisy moving-square video (libx264, a key frame every second)."""
    import av
    import numpy as np

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"g": "25", "preset": "ultrafast"}
        for i in range(seconds * 25):
            a = (rng.random((height, width, 3)) * 60).astype(np.uint8)
            a[height // 3 : height // 3 + 40, (i * 5) % (width - 40) :][:, :40] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def use(way: str) -> None:
    """Make the decoders open files the ``way`` named (module attributes, this process only)."""
    from alsql.media import rangeio
    from alsql.stores import confined

    rangeio.open_regular = confined.open_regular if way != "path" else (lambda p: open(p, "rb"))  # noqa: SIM115
    rangeio.reopenable = confined.reopenable if way != "path" else (lambda fh: fh.name)
    rangeio.NATIVE_PATHS = way != "file"


def rate(uris: list[str], kind: str, cold: bool) -> tuple[float, float]:
    """``(items per second, CPU ms per item)`` decoding all of ``uris`` once."""
    from alsql.media.kinds import MediaSpec, decode_item
    from alsql.media.video import close_containers

    spec = MediaSpec(kind=kind, image_size=64, frames=8, sample_rate=16000, n_mels=64, seconds=1.0 if kind == "audio" else None)
    close_containers()
    t, cpu = time.perf_counter(), time.process_time()
    for uri in uris:
        decode_item(uri, spec)
        if cold:
            close_containers()
    close_containers()
    return len(uris) / (time.perf_counter() - t), 1000 * (time.process_time() - cpu) / len(uris)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # as in a DataLoader worker
    loads = {"video segments, cached open": ("video", "video", False),
             "video segments, cold open": ("video", "video", True),
             "640x360 segments, cold open": ("large", "video", True),
             "wav clips (soundfile)": ("wav", "audio", False),
             "mp3 clips (PyAV)": ("mp3", "audio", False)}
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {name: {w: [] for w in WAYS} for name in loads}
    with tempfile.TemporaryDirectory() as tmp:
        uris = make_files(Path(tmp))
        for name, (which, kind, cold) in loads.items():
            rate(uris[which][:3], kind, cold)  # warm the imports and the page cache
            for _ in range(args.repeats):
                for way in WAYS:
                    use(way)
                    runs[name][way].append(rate(uris[which], kind, cold))
    def med(k: int) -> dict:
        return {name: {w: statistics.median(x[k] for x in v) for w, v in r.items()} for name, r in runs.items()}

    report = {"items_per_s": med(0), "cpu_ms_per_item": med(1), "runs": runs, "repeats": args.repeats,
              "items": {k: len(v) for k, v in uris.items()}}
    for title, key, fmt in ((f"items/s, median of {args.repeats}", "items_per_s", ".1f"),
                            (f"CPU ms/item, median of {args.repeats}", "cpu_ms_per_item", ".2f")):
        print(f"{title:<32}" + "".join(f"{w:>10}" for w in WAYS) + f"{'file/path':>11}{'fd/path':>9}")
        for name, m in report[key].items():
            print(f"{name:<32}" + "".join(f"{m[w]:>10{fmt}}" for w in WAYS)
                  + f"{m['file'] / m['path']:>11.2f}{m['proc_fd'] / m['path']:>9.2f}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
