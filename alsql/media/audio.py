"""Sound files: probe at ingest, read one clip by seeking, log-mel spectrogram in torch.

wav / flac / ogg are read by frame offset with soundfile (``SoundFile.seek``); mp3 and
m4a through PyAV (``container.seek`` then decode forward to the clip). Only the clip's
samples are decoded and held. ``resample`` is polyphase (scipy), ``log_mel`` is
``torch.stft`` power through a mel filterbank built here (HTK mel scale), then log.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from alsql.media.kinds import MediaError, extension
from alsql.media.rangeio import open_media
from alsql.media.video import creation_time, stream_duration

__all__ = [
    "AUDIO_TYPES",
    "SOUNDFILE_EXTENSIONS",
    "probe_audio",
    "read_audio",
    "resample",
    "mel_filterbank",
    "log_mel",
    "decode_audio",
]

AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
}
SOUNDFILE_EXTENSIONS = frozenset({".wav", ".flac", ".ogg"})
TAIL_FRAMES = 4096


def _probe_soundfile(uri: str, source: Any = None) -> dict[str, Any]:
    import soundfile as sf

    with sf.SoundFile(open_media(uri) if source is None else source) as f:
        sr, n, ch = f.samplerate, f.frames, f.channels
        if n <= 0 or sr <= 0:
            raise MediaError("no audio samples")
        f.seek(max(0, n - TAIL_FRAMES))  # the tail reads too (a truncated file fails here)
        got = f.read(min(n, TAIL_FRAMES), dtype="float32", always_2d=True)
        if len(got) < min(n, TAIL_FRAMES):
            raise MediaError(f"truncated: {len(got)} of the last {min(n, TAIL_FRAMES)} frames read")
    return {"duration": n / sr, "rate": float(sr), "channels": ch, "start_time": None}


def _probe_av(uri: str, source: Any = None) -> dict[str, Any]:
    import av

    with av.open(open_media(uri) if source is None else source, metadata_errors="ignore") as c:
        if not c.streams.audio:
            raise MediaError("no audio stream")
        s = c.streams.audio[0]
        duration = stream_duration(c, s)
        if duration <= 0:
            raise MediaError("no audio samples")
        got = 0
        for frame in c.decode(s):
            got += frame.samples
            break
        if not got:
            raise MediaError("no decodable audio frame")
        c.seek(int(max(0.0, duration - 1.0) / s.time_base) + (s.start_time or 0), stream=s, backward=True)
        last = None
        for frame in c.decode(s):
            if frame.time is not None:
                last = frame.time + frame.samples / frame.sample_rate
        if last is None or last < duration - max(0.1 * duration, 0.25):
            raise MediaError(f"truncated: samples stop at {last or 0:.2f} s of {duration:.2f} s")
        channels = getattr(s, "channels", None) or s.codec_context.layout.nb_channels
        return {"duration": duration, "rate": float(s.rate), "channels": channels,
                "start_time": creation_time(c.metadata, s.metadata)}


def probe_audio(uri: str, source: Any = None) -> dict[str, Any]:
    """media_type, duration (s), rate (Hz), channels, start_time (``creation_time`` tag, if any).
    Raises for an empty, truncated or undecodable file, or one with no audio stream.
    ``source``: an open binary file of ``uri`` to read instead of opening it."""
    ext = extension(uri)
    info = _probe_soundfile(uri, source) if ext in SOUNDFILE_EXTENSIONS else _probe_av(uri, source)
    return {"media_type": AUDIO_TYPES.get(ext, "audio/unknown"), "width": None, "height": None, **info}


def resample(wave: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling of a 1-D signal from ``src`` Hz to ``dst`` Hz."""
    if src == dst or len(wave) == 0:
        return wave.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(int(dst), int(src)).limit_denominator(1000)
    return resample_poly(wave, ratio.numerator, ratio.denominator).astype(np.float32)


def _read_soundfile(uri: str, start: float, end: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(open_media(uri)) as f:
        sr = f.samplerate
        first = int(round(start * sr))
        n = max(0, int(round(end * sr)) - first)
        if first >= f.frames:
            raise MediaError(f"clip starts at {start:g} s, past the end ({f.frames / sr:.2f} s)")
        f.seek(first)
        data = f.read(n, dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def _read_av(uri: str, start: float, end: float) -> tuple[np.ndarray, int]:
    import av

    with av.open(open_media(uri), metadata_errors="ignore") as c:
        if not c.streams.audio:
            raise MediaError("no audio stream")
        s = c.streams.audio[0]
        sr = int(s.rate)
        mono = av.AudioResampler(format="fltp", layout="mono", rate=sr)
        c.seek(int(max(0.0, start) / s.time_base) + (s.start_time or 0), stream=s, backward=True)
        first, n = int(round(start * sr)), int(round((end - start) * sr))
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        for frame in c.decode(s):
            if frame.time is None:
                continue
            at = int(round(frame.time * sr))  # sample index of the frame's first sample
            if at + frame.samples <= first:
                continue
            for part in mono.resample(frame):
                x = part.to_ndarray().reshape(-1)
                lo = max(0, first - at)
                take = x[lo : lo + (n - filled)]
                out[filled : filled + len(take)] = take
                filled += len(take)
                at += len(x)
            if filled >= n:
                break
    return out[:filled], sr


def read_audio(uri: str, start: float, end: float, sample_rate: int | None = None) -> np.ndarray:
    """Mono float32 samples of ``[start, end)`` seconds, resampled to ``sample_rate`` when given."""
    if end <= start:
        raise MediaError(f"empty clip [{start:g}, {end:g})")
    reader = _read_soundfile if extension(uri) in SOUNDFILE_EXTENSIONS else _read_av
    wave, sr = reader(uri, start, end)
    return resample(wave, sr, sample_rate) if sample_rate else wave


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters, evenly spaced on the HTK mel scale."""
    fmax = sample_rate / 2 if fmax is None else fmax

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None, :]) / np.maximum(hi - mid, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))
    return torch.from_numpy(fb.astype(np.float32))


def log_mel(wave: np.ndarray | torch.Tensor, sample_rate: int, n_mels: int = 64,
            win_s: float = 0.025, hop_s: float = 0.010) -> torch.Tensor:
    """``(1, n_mels, frames)`` log mel power of a mono signal (25 ms windows, 10 ms hop)."""
    x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    n_fft = 1 << max(4, math.ceil(math.log2(max(16, int(win_s * sample_rate)))))
    hop = max(1, int(round(hop_s * sample_rate)))
    if len(x) < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - len(x)))
    spec = torch.stft(x, n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs().pow(2)
    mel = mel_filterbank(int(sample_rate), n_fft, int(n_mels)) @ spec
    return torch.log(mel + 1e-6).unsqueeze(0)


def decode_audio(uri: str, start: float, end: float | None, sample_rate: int = 16000, n_mels: int = 64,
                 seconds: float | None = None) -> torch.Tensor:
    """The clip ``[start, end)`` -> log-mel ``(1, n_mels, frames)`` at ``sample_rate``; the signal is
    zero-padded or cut to ``seconds`` (default the clip's length) so every clip has one shape."""
    if end is None:
        end = start + (seconds or 1.0)
    wave = read_audio(uri, start, end, sample_rate)
    n = int(round((seconds or (end - start)) * sample_rate))
    if len(wave) < n:
        wave = np.pad(wave, (0, n - len(wave)))
    return log_mel(wave[:n], sample_rate, n_mels)
