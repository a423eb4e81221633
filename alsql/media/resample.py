"""Streaming polyphase resampling in bounded blocks (numpy only: no scipy, no torch).

``poly(x, up, down)`` is ``scipy.signal.resample_poly(x, up, down)`` (the same Kaiser
FIR, beta 5, ``10 * max(up, down)`` taps each side of the centre, zero padding at both
ends) computed here in numpy, a chunk of outputs at a time, so the web app's spectrogram
never pays for importing ``scipy.signal`` (seconds on a loaded machine).

``BlockResampler(src, dst)`` takes a mono signal piece by piece (``push``) and gives the
same samples as ``poly`` over the whole signal, computed on blocks of ``block`` input
samples plus ``pad`` samples of context on each side: never more than
``block + 2 * pad`` source samples are held, whatever the clip's length or the source
rate. The ratio is ``Fraction(dst, src)`` limited to a denominator of 1000, as
``resample`` has always used.

Blocks start at multiples of the ratio's denominator, so each block's first output
falls on an exact output sample and the pieces join without a seam; the context covers
the filter's half length (``resample_poly``'s Kaiser FIR of ``10 * max(up, down)`` taps
each side in the upsampled domain).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

__all__ = ["BLOCK", "BlockResampler", "poly", "ratio", "resample"]

BLOCK = 1 << 16  # source samples per block


def ratio(src: int, dst: int) -> tuple[int, int]:
    """``(up, down)`` of the rational ratio ``dst / src`` (denominator at most 1000)."""
    r = Fraction(int(dst), int(src)).limit_denominator(1000)
    return r.numerator, r.denominator


@functools.lru_cache(maxsize=16)
def _phases(up: int, down: int) -> tuple[np.ndarray, int]:
    """``(H, half)``: ``H[r, t] = h[r + t * up]`` of resample_poly's filter ``h`` (times ``up``)."""
    half = 10 * max(up, down)
    n = 2 * half + 1
    fc = 1.0 / max(up, down)
    m = np.arange(n) - half
    h = fc * np.sinc(fc * m) * np.kaiser(n, 5.0)
    h *= up / h.sum()
    taps = -(-n // up)
    padded = np.zeros(up * taps)
    padded[:n] = h
    phases = np.ascontiguousarray(padded.reshape(taps, up).T)
    phases.setflags(write=False)
    return phases, half


def poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """``resample_poly(x, up, down)`` of a 1-D signal, float64: ``ceil(len(x) * up / down)``
    samples, output ``m`` centred on source position ``m * down / up``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if up == down:
        return x.copy()
    phases, half = _phases(up, down)
    taps = phases.shape[1]
    n_out = -(-len(x) * up // down)
    xp = np.concatenate([np.zeros(taps), x, np.zeros(taps + down + 1)])
    windows = np.lib.stride_tricks.sliding_window_view(xp, taps)  # windows[i] = xp[i : i + taps]
    out = np.empty(n_out)
    for m0 in range(min(up, n_out)):  # outputs m0, m0 + up, ... share one filter phase
        q = m0 * down + half
        first = q // up + 1  # windows[first + k * down] ends at output m0 + k * up's newest sample
        count = len(range(m0, n_out, up))
        out[m0::up] = windows[first : first + (count - 1) * down + 1 : down] @ phases[q % up, ::-1]
    return out


class BlockResampler:
    """Resample a mono stream from ``src`` Hz to ``dst`` Hz in bounded blocks.

    ``push(x)`` returns the output samples that are final so far (float32, possibly
    empty); ``finish()`` returns the rest. The concatenation equals
    ``poly(whole, up, down)`` (``up, down = ratio(src, dst)``) to float precision.
    """

    def __init__(self, src: int, dst: int, block: int = BLOCK) -> None:
        if src <= 0 or dst <= 0:
            raise ValueError(f"sample rates {src} -> {dst}: expected positive rates")
        self.up, self.down = ratio(src, dst)
        self.identity = self.up == self.down
        half = 10 * max(self.up, self.down) / self.up + 2  # filter half length, in source samples
        self.pad = math.ceil(half / self.down) * self.down
        self.block = max(1, math.ceil(block / self.down)) * self.down
        self._buf = np.zeros(self.pad, dtype=np.float64)  # zeros before the start, as resample_poly pads
        self._fill = self.pad
        self._taken = 0  # source samples pushed

    def _run(self, seg: np.ndarray, start: int, count: int) -> np.ndarray:
        y = poly(seg, self.up, self.down)
        first = start * self.up // self.down
        return y[first : first + count].astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.identity:
            return x.astype(np.float32)
        self._taken += len(x)
        outs = []
        pos = 0
        while pos < len(x):
            need = self.pad + self.block + self.pad
            if len(self._buf) < need:
                grown = np.zeros(need, dtype=np.float64)
                grown[: self._fill] = self._buf[: self._fill]
                self._buf = grown
            take = min(len(x) - pos, need - self._fill)
            self._buf[self._fill : self._fill + take] = x[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == need:  # a whole block with its context on both sides
                outs.append(self._run(self._buf[:need], self.pad, self.block * self.up // self.down))
                keep = self._buf[self.block : need].copy()
                self._buf[: len(keep)] = keep
                self._fill = len(keep)
        return np.concatenate(outs) if outs else np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        rest = self._fill - self.pad  # source samples not yet given out
        if rest <= 0 or self._taken == 0:
            return np.zeros(0, dtype=np.float32)
        seg = np.concatenate([self._buf[: self._fill], np.zeros(self.pad)])
        emitted_before = (self._taken - rest) * self.up // self.down
        total = -(-self._taken * self.up // self.down)  # resample_poly's length: ceil(n * up / down)
        self._fill = self.pad
        return self._run(seg, self.pad, total - emitted_before)


def resample(wave: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling of a 1-D signal from ``src`` Hz to ``dst`` Hz, in bounded blocks."""
    wave = np.asarray(wave)
    if src == dst or len(wave) == 0:
        return wave.astype(np.float32, copy=False)
    r = BlockResampler(int(src), int(dst))
    out = [r.push(wave[i : i + r.block]) for i in range(0, len(wave), r.block)]
    out.append(r.finish())
    return np.concatenate(out)
