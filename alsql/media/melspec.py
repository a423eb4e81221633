"""Log-mel spectrograms in numpy (no torch): what the labeling page draws.

``mel_filters(sample_rate, n_fft, n_mels)`` is the triangular filterbank on the HTK mel
scale, ``(n_mels, n_fft // 2 + 1)`` float32; ``alsql.media.audio.mel_filterbank`` is the
same array as a torch tensor. ``log_mel_array(wave, sample_rate)`` computes what
``alsql.media.audio.log_mel`` computes in torch (``torch.stft`` with ``center=True``,
reflect padding and a periodic Hann window; power; filterbank; natural log of power +
1e-6), as ``(n_mels, frames)`` float32: the page and the network see one spectrogram,
and a web request never loads torch.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["fft_sizes", "mel_filters", "log_mel_array"]


def fft_sizes(sample_rate: int, win_s: float = 0.025, hop_s: float = 0.010) -> tuple[int, int]:
    """``(n_fft, hop)`` in samples: the window rounded up to a power of two (at least 16)."""
    n_fft = 1 << max(4, math.ceil(math.log2(max(16, int(win_s * sample_rate)))))
    return n_fft, max(1, int(round(hop_s * sample_rate)))


@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters, evenly spaced on the HTK mel scale
    (read-only: the cached array is shared)."""
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
    fb = np.maximum(0.0, np.minimum(up, down)).astype(np.float32)
    fb.setflags(write=False)
    return fb


def log_mel_array(wave: np.ndarray, sample_rate: int, n_mels: int = 64, win_s: float = 0.025,
                  hop_s: float = 0.010) -> np.ndarray:
    """``(n_mels, frames)`` log mel power of a mono signal (25 ms windows, 10 ms hop)."""
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    n_fft, hop = fft_sizes(int(sample_rate), win_s, hop_s)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, n_fft // 2 + 1)
    mel = mel_filters(int(sample_rate), n_fft, int(n_mels)) @ power.T.astype(np.float32)
    return np.log(mel + 1e-6).astype(np.float32)
