"""Bounded audio work: the first spectrogram after the server starts, and a high-rate clip.

Each figure sits beside a baseline measured in the same run, on the same file:

1. First spectrogram in a fresh process that has imported the web app (what the first
   request after ``alsql serve`` pays): ``import alsql.web.spectrogram`` then ``clip_png``
   of a 1-s clip of a 44.1 kHz WAV, wall seconds, against the same clip through the torch
   path the route used before (``import torch``, ``read_audio``,
   ``alsql.media.audio.log_mel`` in torch), also in a fresh process with the app imported. Whether torch was imported is reported for each. Target: under 1 s.
2. A 10-s clip of a 384 kHz stereo WAV read at 16 kHz (``read_audio``): peak traced memory
   (tracemalloc: numpy's buffers included) and seconds, against reading the whole clip at
   the source rate and resampling it at once (``resample_poly``), which the decoder did
   before. Target: peak memory independent of the source rate (a few MB).

    python benchmarks/media_bounds.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPORT = Path(__file__).parent / "reports" / "media_bounds.json"

FIRST_NEW = """
import sys, time
import alsql.web.app  # the server has started: its imports are paid before the first request
t = time.perf_counter()
from alsql.web.spectrogram import clip_png
png = clip_png({uri!r}, 1.0, 2.0)
print(time.perf_counter() - t, "torch" in sys.modules)
"""
FIRST_OLD = """
import sys, time
import alsql.web.app
t = time.perf_counter()
import torch
from alsql.media.audio import log_mel, read_audio
mel = log_mel(read_audio({uri!r}, 1.0, 2.0, 16000), 16000)[0].numpy()
print(time.perf_counter() - t, "torch" in sys.modules)
"""


def write_wav(path: Path, sr: int, seconds: float, channels: int) -> Path:
    import soundfile as sf

    t = np.arange(int(sr * seconds)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    sf.write(str(path), np.repeat(wave[:, None], channels, axis=1), sr, subtype="PCM_16")
    return path


def fresh(code: str) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    seconds, torch = out.stdout.split()
    return float(seconds), torch == "True"


def whole_then_resample(uri: str, start: float, end: float, rate: int) -> np.ndarray:
    """The decoder before: the whole clip at the source rate, mixed, then resampled at once."""
    import soundfile as sf
    from scipy.signal import resample_poly

    from alsql.media.resample import ratio
    from alsql.stores import uri_to_path

    with sf.SoundFile(str(uri_to_path(uri))) as f:
        sr = f.samplerate
        f.seek(int(round(start * sr)))
        data = f.read(int(round(end * sr)) - int(round(start * sr)), dtype="float32", always_2d=True)
    up, down = ratio(sr, rate)
    return resample_poly(data.mean(axis=1), up, down).astype(np.float32)


def traced(fn, *args) -> tuple[float, int, np.ndarray]:
    tracemalloc.start()
    t = time.perf_counter()
    try:
        out = fn(*args)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args()

    from alsql.media.audio import read_audio
    from alsql.stores import path_to_uri

    with tempfile.TemporaryDirectory() as tmp:
        hum = path_to_uri(write_wav(Path(tmp) / "hum.wav", 44100, 3.0, 1))
        bat = path_to_uri(write_wav(Path(tmp) / "bat.wav", 384000, 11.0, 2))
        first = {"new": [], "old": []}
        for _ in range(args.repeats):
            first["new"].append(fresh(FIRST_NEW.format(uri=hum)))
            first["old"].append(fresh(FIRST_OLD.format(uri=hum)))
        high = {"new": [], "old": []}
        for _ in range(args.repeats):
            s_new, p_new, y_new = traced(read_audio, bat, 0.5, 10.5, 16000)
            s_old, p_old, y_old = traced(whole_then_resample, bat, 0.5, 10.5, 16000)
            high["new"].append((s_new, p_new))
            high["old"].append((s_old, p_old))
        same = bool(np.allclose(y_new, y_old, atol=1e-5))

    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    report = {
        "first_spectrogram_s": {"new": med(first["new"], 0), "torch_path": med(first["old"], 0),
                                "new_imports_torch": any(r[1] for r in first["new"])},
        "high_rate_clip": {"source_rate": 384000, "channels": 2, "seconds": 10.0, "rate": 16000,
                           "new_s": med(high["new"], 0), "new_peak_bytes": med(high["new"], 1),
                           "whole_s": med(high["old"], 0), "whole_peak_bytes": med(high["old"], 1),
                           "same_samples": same},
        "repeats": args.repeats,
    }
    f, h = report["first_spectrogram_s"], report["high_rate_clip"]
    print(f"{'measure':<44} {'now':>12} {'before':>12}")
    print(f"{'first spectrogram, fresh process (s)':<44} {f['new']:>12.2f} {f['torch_path']:>12.2f}")
    print(f"{'  torch imported':<44} {str(f['new_imports_torch']):>12} {'True':>12}")
    print(f"{'10-s clip at 384 kHz -> 16 kHz (s)':<44} {h['new_s']:>12.2f} {h['whole_s']:>12.2f}")
    print(f"{'  peak traced memory (MB)':<44} {h['new_peak_bytes'] / 2**20:>12.1f} {h['whole_peak_bytes'] / 2**20:>12.1f}")
    print(f"{'  same samples':<44} {str(same):>12}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
