"""Generated media for the tests: videos whose frames encode their index, tones, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def brightness(i: int, n: int) -> int:
    """The grey level of frame ``i`` of ``n`` (increasing, 20..220)."""
    return 20 + int(round(200 * i / max(1, n)))


def make_video(path: Path, seconds: float = 6, fps: int = 10, size: int = 32, *, creation_time: str | None = None,
               codec: str = "libx264", pattern: str = "index", seed: int = 0, faststart: bool = False) -> Path:
    """A video whose frame ``i`` is a flat grey of ``brightness(i, n)`` (``pattern="index"``),
    or has a bright square at the left (``"left"``) or the right (``"right"``). ``faststart``
    puts the index first (then a truncated file still opens, and its frames stop early)."""
    import av

    n = int(round(seconds * fps))
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else None) as c:
        if creation_time:
            c.metadata["creation_time"] = creation_time
        s = c.add_stream(codec, rate=fps)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        if codec == "libx264":
            s.options = {"g": str(fps), "preset": "ultrafast"}
        for i in range(n):
            if pattern == "index":
                a = np.full((size, size, 3), brightness(i, n), np.uint8)
            else:
                a = (rng.random((size, size, 3)) * 40).astype(np.uint8)
                x0 = 2 if pattern == "left" else size // 2 + 2
                y0 = (i * 2) % (size - size // 3)
                a[y0 : y0 + size // 3, x0 : x0 + size // 3] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_tone(path: Path, seconds: float = 3.0, sr: int = 8000, freq: float = 440.0, *, noise: float = 0.0,
              seed: int = 0) -> Path:
    """A sine tone (plus white noise) as wav / flac / ogg (soundfile) or mp3 / m4a (PyAV)."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    wave = (0.4 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(len(t))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".wav", ".flac", ".ogg"):
        import soundfile as sf

        sf.write(str(path), wave, sr)
        return path
    import av

    codec = "libmp3lame" if path.suffix == ".mp3" else "aac"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=sr)
        s.layout = "mono"
        step = 1024
        for k in range(0, len(wave), step):
            chunk = wave[k : k + step]
            if codec == "aac":
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            else:
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            fr.sample_rate = sr
            fr.pts = k
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path
