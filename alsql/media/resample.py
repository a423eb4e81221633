"""Streaming polyphase resampling in bounded blocks (numpy and scipy; no torch).

``BlockResampler(src, dst)`` takes a mono signal piece by piece (``push``) and gives the
same samples as ``scipy.signal.resample_poly`` over the whole signal (zero padding at both
ends), computed on blocks of ``block`` input samples plus ``pad`` samples of context on
each side: never more than ``block + 2 * pad`` source samples are held, whatever the
clip's length or the source rate. The ratio is ``Fraction(dst, src)`` limited to a
denominator of 1000, as ``resample`` has always used.

Blocks start at multiples of the ratio's denominator, so each block's first output
falls on an exact output sample and the pieces join without a seam; the context covers
the filter's half length (``resample_poly``'s Kaiser FIR of ``10 * max(up, down)`` taps
each side in the upsampled domain).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["BLOCK", "BlockResampler", "ratio", "resample"]

BLOCK = 1 << 16  # source samples per block


def ratio(src: int, dst: int) -> tuple[int, int]:
    """``(up, down)`` of the rational ratio ``dst / src`` (denominator at most 1000)."""
    r = Fraction(int(dst), int(src)).limit_denominator(1000)
    return r.numerator, r.denominator


class BlockResampler:
    """Resample a mono stream from ``src`` Hz to ``dst`` Hz in bounded blocks.

    ``push(x)`` returns the output samples that are final so far (float32, possibly
    empty); ``finish()`` returns the rest. The concatenation equals
    ``resample_poly(whole, up, down)`` (``up, down = ratio(src, dst)``) to float precision.
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
        from scipy.signal import resample_poly

        y = resample_poly(seg, self.up, self.down)
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
