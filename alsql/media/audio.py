"""Sound files: probe at ingest, read one clip by seeking, log-mel spectrogram in torch.

wav / flac / ogg are read by frame offset with soundfile (``SoundFile.seek``); mp3 and
m4a through PyAV (``container.seek`` then decode forward to the clip). Only the clip is
decoded, in blocks of at most ``READ_FRAMES`` source frames, each mixed to mono and
resampled to the requested rate as it arrives (``alsql.media.resample.BlockResampler``):
memory follows the clip's length at the *requested* rate, never the source rate. A
source rate over ``MAX_SAMPLE_RATE`` is refused (``MediaRefused``) from the header, at
ingest and at decode. A WAV whose header claims more sample bytes than the file holds
is refused as truncated. ``log_mel`` is ``torch.stft`` power through a mel filterbank
(HTK mel scale), then log; ``alsql.media.melspec.log_mel_array`` is the same in numpy.
Torch is imported only by ``mel_filterbank``, ``log_mel`` and ``decode_audio``.
"""

from __future__ import annotations

import functools
import os
import struct
from contextlib import nullcontext
from typing import Any

import numpy as np

from alsql.media.kinds import MediaError, MediaRefused, extension
from alsql.media.melspec import fft_sizes, mel_filters
from alsql.media.resample import BlockResampler, resample
from alsql.media.rangeio import media_input
from alsql.media.video import creation_time, stream_duration

__all__ = [
    "AUDIO_TYPES",
    "SOUNDFILE_EXTENSIONS",
    "MAX_SAMPLE_RATE",
    "READ_FRAMES",
    "check_rate",
    "probe_audio",
    "read_audio",
    "resample",
    "mel_filterbank",
    "log_mel",
    "decode_audio",
    "decode_waveform",
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
MAX_SAMPLE_RATE = 768_000  # Hz: the fastest audio interfaces; ultrasound recorders reach 500 kHz
READ_FRAMES = 1 << 16  # source frames decoded per block


def check_rate(rate: float) -> None:
    """``MediaRefused`` for a sample rate that is not positive or over ``MAX_SAMPLE_RATE``."""
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise MediaRefused(f"sample rate of {rate:,.0f} Hz, over the limit of {MAX_SAMPLE_RATE:,} Hz"
                           if rate > 0 else f"sample rate of {rate:g} Hz: expected a positive rate")


def _wav_header(source: Any) -> None:
    """Checks a RIFF / RF64 WAV's header before libsndfile reads it: ``MediaRefused`` for a
    sample rate over the limit (as the header's unsigned field says), ``MediaError`` when the
    data chunk claims more bytes than follow it (truncated)."""
    fh = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source
    try:
        fh.seek(0)
        head = fh.read(1 << 16)
        size = fh.seek(0, os.SEEK_END)
    finally:
        if fh is not source:
            fh.close()
        else:
            fh.seek(0)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return
    pos, big = 12, None
    while pos + 8 <= len(head):
        cid, n = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"fmt " and pos + 16 <= len(head):
            check_rate(struct.unpack_from("<I", head, pos + 12)[0])
        if cid == b"ds64" and pos + 24 <= len(head):
            big = struct.unpack_from("<Q", head, pos + 16)[0]
        if cid == b"data":
            claimed = big if (head[:4] == b"RF64" and big is not None and n == 0xFFFFFFFF) else n
            held = size - (pos + 8)
            if claimed > held:
                raise MediaError(f"truncated: the header claims {claimed:,} bytes of samples, "
                                 f"the file holds {max(held, 0):,}")
            return
        pos += 8 + n + (n & 1)


def _probe_soundfile(uri: str, source: Any = None) -> dict[str, Any]:
    import soundfile as sf

    with media_input(uri) if source is None else nullcontext(source) as src:
        if extension(uri) == ".wav":
            _wav_header(src)
        with sf.SoundFile(src) as f:
            sr, n, ch = f.samplerate, f.frames, f.channels
            check_rate(sr)  # before any sample is read
            if n <= 0 or sr <= 0:
                raise MediaError("no audio samples")
            f.seek(max(0, n - TAIL_FRAMES))  # the tail reads too (a truncated file fails here)
            got = f.read(min(n, TAIL_FRAMES), dtype="float32", always_2d=True)
            if len(got) < min(n, TAIL_FRAMES):
                raise MediaError(f"truncated: {len(got)} of the last {min(n, TAIL_FRAMES)} frames read")
    return {"duration": n / sr, "rate": float(sr), "channels": ch, "start_time": None}


def _probe_av(uri: str, source: Any = None) -> dict[str, Any]:
    import av

    with media_input(uri) if source is None else nullcontext(source) as src, \
            av.open(src, metadata_errors="ignore") as c:
        if not c.streams.audio:
            raise MediaError("no audio stream")
        s = c.streams.audio[0]
        check_rate(float(s.rate or 0))  # before any frame is decoded
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


def _sink(src: int, dst: int | None):
    """``(push, done)``: blocks at ``src`` Hz in, the clip at ``dst`` Hz (``src`` when None) out."""
    r = BlockResampler(src, dst) if dst and dst != src else None
    parts: list[np.ndarray] = []

    def push(x: np.ndarray) -> None:
        parts.append(r.push(x) if r else np.asarray(x, dtype=np.float32))

    def done() -> np.ndarray:
        if r:
            parts.append(r.finish())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    return push, done


def _read_soundfile(uri: str, start: float, end: float, rate: int | None) -> np.ndarray:
    import soundfile as sf

    with media_input(uri) as src, sf.SoundFile(src) as f:
        sr = f.samplerate
        check_rate(sr)
        first = int(round(start * sr))
        n = max(0, int(round(end * sr)) - first)
        if first >= f.frames:
            raise MediaError(f"clip starts at {start:g} s, past the end ({f.frames / sr:.2f} s)")
        f.seek(first)
        push, done = _sink(sr, rate)
        while n > 0:
            data = f.read(min(READ_FRAMES, n), dtype="float32", always_2d=True)
            if not len(data):
                break
            n -= len(data)
            push(data.mean(axis=1))
    return done()


def _read_av(uri: str, start: float, end: float, rate: int | None) -> np.ndarray:
    import av

    with media_input(uri) as src, av.open(src, metadata_errors="ignore") as c:
        if not c.streams.audio:
            raise MediaError("no audio stream")
        s = c.streams.audio[0]
        sr = int(s.rate)
        check_rate(sr)
        mono = av.AudioResampler(format="fltp", layout="mono", rate=sr)
        c.seek(int(max(0.0, start) / s.time_base) + (s.start_time or 0), stream=s, backward=True)
        first, n = int(round(start * sr)), int(round((end - start) * sr))
        push, done = _sink(sr, rate)
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
                if len(take):
                    push(take)
                filled += len(take)
                at += len(x)
            if filled >= n:
                break
    return done()


def read_audio(uri: str, start: float, end: float, sample_rate: int | None = None) -> np.ndarray:
    """Mono float32 samples of ``[start, end)`` seconds, resampled to ``sample_rate`` when given
    (block by block as they are decoded); ``MediaRefused`` for a source rate over the limit."""
    if end <= start:
        raise MediaError(f"empty clip [{start:g}, {end:g})")
    reader = _read_soundfile if extension(uri) in SOUNDFILE_EXTENSIONS else _read_av
    return reader(uri, start, end, int(sample_rate) if sample_rate else None)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None):
    """``(n_mels, n_fft // 2 + 1)`` torch tensor of ``alsql.media.melspec.mel_filters``."""
    import torch

    return torch.from_numpy(mel_filters(sample_rate, n_fft, n_mels, fmin, fmax).copy())


def log_mel(wave: Any, sample_rate: int, n_mels: int = 64, win_s: float = 0.025, hop_s: float = 0.010):
    """``(1, n_mels, frames)`` torch tensor: log mel power of a mono signal (25 ms windows, 10 ms hop)."""
    import torch

    x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    n_fft, hop = fft_sizes(int(sample_rate), win_s, hop_s)
    if len(x) < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - len(x)))
    spec = torch.stft(x, n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True).abs().pow(2)
    mel = mel_filterbank(int(sample_rate), n_fft, int(n_mels)) @ spec
    return torch.log(mel + 1e-6).unsqueeze(0)


def decode_waveform(uri: str, start: float, end: float | None, sample_rate: int = 16000,
                    seconds: float | None = None) -> np.ndarray:
    """The clip ``[start, end)`` -> mono float32 samples ``(samples,)`` at ``sample_rate``, zero-padded or
    cut to ``seconds`` when given (else the clip's own length)."""
    if end is None:
        end = start + (seconds or 1.0)
    wave = read_audio(uri, start, end, sample_rate)
    if seconds is not None:
        n = int(round(seconds * sample_rate))
        wave = np.pad(wave, (0, max(0, n - len(wave))))[:n]
    return np.ascontiguousarray(wave, dtype=np.float32)


def decode_audio(uri: str, start: float, end: float | None, sample_rate: int = 16000, n_mels: int = 64,
                 seconds: float | None = None):
    """The clip ``[start, end)`` -> log-mel ``(1, n_mels, frames)`` at ``sample_rate``; the signal is
    zero-padded or cut to ``seconds`` (default the clip's length) so every clip has one shape."""
    if end is None:
        end = start + (seconds or 1.0)
    wave = read_audio(uri, start, end, sample_rate)
    n = int(round((seconds or (end - start)) * sample_rate))
    if len(wave) < n:
        wave = np.pad(wave, (0, n - len(wave)))
    return log_mel(wave[:n], sample_rate, n_mels)
