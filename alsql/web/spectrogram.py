"""The log-mel spectrogram of an audio clip as a PNG, for the labeling page.

``clip_png(uri, start, end)`` decodes only ``[start, end)`` seconds of the source: the
blob is read through its store by ranges (``RangeFile``), PyAV seeks to the clip and
decodes it to mono float samples, then 64 mel bands over 25 ms frames are rendered
(dB, the clip's own 80 dB range, low frequencies at the bottom) with Pillow.
"""

from __future__ import annotations

import io

import numpy as np

from alsql.loaders.stores import store_for

__all__ = ["RangeFile", "decode_clip", "log_mel", "clip_png"]

MAX_CLIP_S = 60.0


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over a blob, read with ``store.read_range`` on demand."""

    def __init__(self, uri: str, block: int = 1 << 16) -> None:
        self.uri, self.store, self.block = uri, store_for(uri), block
        self.length, self.pos = self.store.size(uri), 0
        self._buf, self._buf_at = b"", 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b) -> int:
        n = min(len(b), max(0, self.length - self.pos))
        if n == 0:
            return 0
        if not (self._buf_at <= self.pos and self.pos + n <= self._buf_at + len(self._buf)):
            self._buf_at = self.pos
            self._buf = self.store.read_range(self.uri, self.pos, max(n, self.block))
            n = min(n, len(self._buf))
        off = self.pos - self._buf_at
        b[:n] = self._buf[off:off + n]
        self.pos += n
        return n


def decode_clip(uri: str, start: float, end: float, rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of ``[start, end)`` at ``rate`` Hz, decoded after a seek."""
    import av

    if not 0 <= start < end or end - start > MAX_CLIP_S:
        raise ValueError(f"clip [{start}, {end}): expected 0 <= start < end, at most {MAX_CLIP_S:g} s")
    want = int(round((end - start) * rate))
    out, got = [], 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    with av.open(RangeFile(uri), "r") as container:
        if not container.streams.audio:
            raise ValueError(f"{uri}: no audio stream")
        stream = container.streams.audio[0]
        container.seek(int(start / stream.time_base), stream=stream, backward=True) if start > 0 else None
        for frame in container.decode(stream):
            t0 = float(frame.pts * stream.time_base) if frame.pts is not None else start
            for r in resampler.resample(frame):
                x = r.to_ndarray().reshape(-1)
                skip = max(0, int(round((start - t0) * rate))) if t0 < start else 0
                x = x[skip:]
                out.append(x[: want - got])
                got += len(out[-1])
            if got >= want:
                break
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _mel_filters(n_fft: int, rate: int, bands: int) -> np.ndarray:
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    points = hz(np.linspace(mel(0), mel(rate / 2), bands + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    fb = np.zeros((bands, bins.size), np.float32)
    for i in range(bands):
        lo, mid, hi = points[i:i + 3]
        fb[i] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
    return fb


def log_mel(x: np.ndarray, rate: int = 16000, bands: int = 64) -> np.ndarray:
    """``(bands, frames)`` log-mel power in dB (25 ms Hann frames, 10 ms hop)."""
    n_fft, hop = int(0.025 * rate), int(0.010 * rate)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return 10 * np.log10(_mel_filters(n_fft, rate, bands) @ power.T + 1e-10)


def clip_png(uri: str, start: float, end: float, height: int = 128) -> bytes:
    """The PNG of the clip's log-mel spectrogram (about 4 px per 10 ms frame, ``height`` tall)."""
    from PIL import Image

    db = log_mel(decode_clip(uri, start, end))
    db = np.clip((db - (db.max() - 80)) / 80, 0, 1)[::-1]
    rgb = np.stack([db ** 0.5, db ** 1.5, 0.35 + 0.4 * db * (1 - db)], -1)  # dark blue -> orange -> white
    img = Image.fromarray((rgb * 255).astype(np.uint8)).resize((max(db.shape[1] * 4, 64), height), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
