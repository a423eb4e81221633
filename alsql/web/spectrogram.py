"""The log-mel spectrogram of an audio clip as a PNG, for the labeling page.

``clip_png(uri, start, end)`` decodes only ``[start, end)`` seconds of the source with
the loaders' own decoder (``alsql.media.audio.read_audio``: a seek, ranged reads on a
remote store, resampled to ``SAMPLE_RATE`` block by block as it decodes, a source rate
over ``alsql.media.audio.MAX_SAMPLE_RATE`` refused), computes the same log-mel
spectrogram the audio network sees, in numpy (``alsql.media.melspec.log_mel_array``:
64 bands, 25 ms windows, 10 ms hop) and renders it with Pillow: the clip's own 80 dB
range, low frequencies at the bottom, dark blue to white. Nothing on this path imports
torch, so the first request after the server starts costs the decode, not a torch load.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["MAX_CLIP_S", "SAMPLE_RATE", "clip_png"]

MAX_CLIP_S = 60.0
SAMPLE_RATE = 16000


def clip_png(uri: str, start: float, end: float, height: int = 128) -> bytes:
    """The PNG of the clip's log-mel spectrogram (4 px per 10 ms frame, ``height`` tall).

    ``ValueError`` for a clip that is empty or longer than ``MAX_CLIP_S`` seconds.
    """
    from PIL import Image

    from alsql.media.audio import read_audio
    from alsql.media.melspec import log_mel_array

    if not 0 <= start < end or end - start > MAX_CLIP_S:
        raise ValueError(f"clip [{start:g}, {end:g}): expected 0 <= start < end, at most {MAX_CLIP_S:g} s")
    mel = log_mel_array(read_audio(uri, start, end, SAMPLE_RATE), SAMPLE_RATE)
    db = mel * (10 / math.log(10))  # natural log power -> dB
    db = np.clip((db - (db.max() - 80)) / 80, 0, 1)[::-1]
    rgb = np.stack([db ** 0.5, db ** 1.5, 0.35 + 0.4 * db * (1 - db)], -1)
    img = Image.fromarray((rgb * 255).astype(np.uint8)).resize((max(db.shape[1] * 4, 64), height), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
