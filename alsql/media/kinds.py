"""What kind an item is, its Media Fragments URI, segment tiling, and one decode entry point.

``decode_item(uri, spec)`` turns any item uri into the tensor its model reads:
an image -> ``(C, H, W)``, a video segment -> ``(T, 3, H, W)``, an audio clip -> a
log-mel spectrogram ``(1, n_mels, frames)``. Callers never branch on the kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from alsql.errors import AlsqlError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "DEFAULT_SEGMENT",
    "MIN_SEGMENT_S",
    "MediaSpec",
    "KindMismatch",
    "MediaError",
    "MediaRefused",
    "extension",
    "kind_of",
    "fragment_uri",
    "parse_fragment",
    "parse_seconds",
    "tile",
    "iter_tiles",
    "check_tiling",
    "decode_item",
    "model_spec",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".m4a"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
DEFAULT_SEGMENT = {"video": 2.0, "audio": 1.0}  # seconds
MIN_SEGMENT_S = 0.1  # the shortest --segment and --stride: 10 log-mel frames, a few video frames

_FRAGMENT = re.compile(r"#t=(?:npt:)?([0-9.]*)(?:,([0-9.]+))?$")


class MediaError(Exception):
    """A media file that cannot be used (no stream, truncated, empty): the message says why."""


class MediaRefused(MediaError):
    """A file refused from its header, before anything is decoded: a limit is exceeded
    (sample rate, frame size); ingest records it ``refused`` with the message."""


class KindMismatch(Exception):
    """An item of another kind than the model reads (skipped, not corrupt)."""


def extension(uri: str) -> str:
    """The lower-case extension of a uri's path (no query, no fragment)."""
    path = uri.split("#", 1)[0].split("?", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return ("." + name.rsplit(".", 1)[1].lower()) if "." in name else ""


def kind_of(uri: str) -> str | None:
    """``image``, ``video``, ``audio`` by extension; None for anything else."""
    ext = extension(uri)
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def fragment_uri(source_uri: str, start: float, end: float) -> str:
    """``<source uri>#t=start,end`` (seconds, at most 3 decimals)."""
    return f"{source_uri}#t={_num(start)},{_num(end)}"


def parse_fragment(uri: str) -> tuple[str, float | None, float | None]:
    """``(source uri, start, end)``; start/end None when the uri has no temporal fragment."""
    m = _FRAGMENT.search(uri)
    if not m:
        return uri, None, None
    start = float(m.group(1)) if m.group(1) else 0.0
    end = float(m.group(2)) if m.group(2) else None
    return uri[: m.start()], start, end


def parse_seconds(text: str | float | int, name: str = "--segment", minimum: float | None = None) -> float:
    """``"2s"``, ``"500ms"``, ``"1.5"``, ``"1m"`` -> seconds (positive; at least ``minimum``
    when given, else ``AlsqlError`` naming ``name`` and the minimum)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min)?\s*", str(text))
        if not m:
            raise AlsqlError(f"{name} {text!r}: expected a duration such as 2s, 500ms or 1.5")
        value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}[m.group(2)]
    if not value > 0 or not math.isfinite(value):
        raise AlsqlError(f"{name} {text!r}: expected a positive duration")
    if minimum is not None and value < minimum - 1e-9:
        raise AlsqlError(f"{name} {text!r}: expected at least {_num(minimum)} s ({_num(minimum * 1000)} ms)")
    return value


def check_tiling(segment: float | None, stride: float | None) -> None:
    """``AlsqlError`` naming ``--segment`` / ``--stride`` when either is under ``MIN_SEGMENT_S``."""
    for name, value in (("--segment", segment), ("--stride", stride)):
        if value is not None:
            parse_seconds(float(value), name, MIN_SEGMENT_S)


def tile(duration: float, segment: float, stride: float | None = None) -> list[tuple[float, float]]:
    """Segments ``[start, end)`` of ``segment`` seconds every ``stride`` seconds over
    ``[0, duration)``; a last shorter piece is kept when at least half a segment long."""
    return list(iter_tiles(duration, segment, stride))


def iter_tiles(duration: float, segment: float, stride: float | None = None) -> Iterator[tuple[float, float]]:
    """``tile`` one segment at a time (a long file's segments are never all held at once)."""
    stride = segment if stride is None else stride
    if segment <= 0 or stride <= 0:
        raise AlsqlError(f"segment {segment} / stride {stride}: expected positive seconds")
    k = 0
    eps = 1e-6
    while True:
        start = round(k * stride, 6)
        if start >= duration - eps:
            break
        end = round(min(start + segment, duration), 6)
        if end - start >= segment / 2 - eps:
            yield start, end
        if start + segment >= duration - eps:
            break
        k += 1


@dataclass(frozen=True)
class MediaSpec:
    """How a model's inputs are decoded (kept in the model's artifact meta).

    ``image_size``: pixels per side (images and video frames; None keeps an image's size);
    ``frames``: T frames per video segment; ``sample_rate``: audio resampled to this rate;
    ``n_mels``: mel bands; ``seconds``: every clip padded or cut to this length (None:
    the item's own length); ``waveform``: a sound clip decodes to its mono samples
    ``(samples,)`` at ``sample_rate`` instead of a log-mel spectrogram (foundation audio
    encoders take the raw signal through their own feature extractor).
    """

    kind: str = "image"
    image_size: int | None = None
    grayscale: bool = False
    frames: int = 8
    sample_rate: int = 16000
    n_mels: int = 64
    seconds: float | None = None
    waveform: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "MediaSpec":
        d = d or {}
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def decode_item(uri: str, spec: MediaSpec):
    """The model input tensor of one item (raises on an undecodable item;
    ``KindMismatch`` for an item of another kind than ``spec.kind``)."""
    kind = kind_of(uri)
    if kind != spec.kind:
        raise KindMismatch(f"{uri}: a {kind or 'unknown'} item, the model reads {spec.kind}")
    source, start, end = parse_fragment(uri)
    if kind == "video":
        from alsql.media.video import decode_video

        return decode_video(source, start or 0.0, end, frames=spec.frames, size=spec.image_size or 64)
    if kind == "audio":
        from alsql.media.audio import decode_audio, decode_waveform

        if spec.waveform:
            return decode_waveform(source, start or 0.0, end, spec.sample_rate, seconds=spec.seconds)
        return decode_audio(source, start or 0.0, end, spec.sample_rate, n_mels=spec.n_mels, seconds=spec.seconds)
    raise KindMismatch(f"{uri}: images decode through the dataset's image path")


def model_spec(url: str, model_id: int) -> MediaSpec | None:
    """The ``MediaSpec`` recorded in a model version's params (None when none is)."""
    from sqlalchemy import select

    from alsql.db import make_engine
    from alsql.schema import model_versions

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            params = conn.execute(
                select(model_versions.c.params).where(model_versions.c.model_id == model_id)
            ).scalar()
    finally:
        engine.dispose()
    media = (params or {}).get("media")
    return MediaSpec.from_dict(media) if media else None
