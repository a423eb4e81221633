"""What kind an item is, its Media Fragments URI, segment tiling, and one decode entry point.

``decode_item(uri, spec)`` turns any item uri into the tensor its model reads:
an image -> ``(C, H, W)``, a video segment -> ``(T, 3, H, W)``, an audio clip -> a
log-mel spectrogram ``(1, n_mels, frames)``. Callers never branch on the kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from alsql.errors import AlsqlError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "DEFAULT_SEGMENT",
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
    "decode_item",
    "model_spec",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".m4a"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
DEFAULT_SEGMENT = {"video": 2.0, "audio": 1.0}  # seconds

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


def parse_seconds(text: str | float | int, name: str = "--segment") -> float:
    """``"2s"``, ``"500ms"``, ``"1.5"``, ``"1m"`` -> seconds (positive)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min)?\s*", str(text))
        if not m:
            raise AlsqlError(f"{name} {text!r}: expected a duration such as 2s, 500ms or 1.5")
        value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}[m.group(2)]
    if not value > 0 or not math.isfinite(value):
        raise AlsqlError(f"{name} {text!r}: expected a positive duration")
    return value


def tile(duration: float, segment: float, stride: float | None = None) -> list[tuple[float, float]]:
    """Segments ``[start, end)`` of ``segment`` seconds every ``stride`` seconds over
    ``[0, duration)``; a last shorter piece is kept when at least half a segment long."""
    stride = segment if stride is None else stride
    if segment <= 0 or stride <= 0:
        raise AlsqlError(f"segment {segment} / stride {stride}: expected positive seconds")
    out: list[tuple[float, float]] = []
    k = 0
    eps = 1e-6
    while True:
        start = round(k * stride, 6)
        if start >= duration - eps:
            break
        end = round(min(start + segment, duration), 6)
        if end - start >= segment / 2 - eps:
            out.append((start, end))
        if start + segment >= duration - eps:
            break
        k += 1
    return out


@dataclass(frozen=True)
class MediaSpec:
    """How a model's inputs are decoded (kept in the model's artifact meta).

    ``image_size``: pixels per side (images and video frames; None keeps an image's size);
    ``frames``: T frames per video segment; ``sample_rate``: audio resampled to this rate;
    ``n_mels``: mel bands; ``seconds``: every clip padded or cut to this length (None:
    the item's own length).
    """

    kind: str = "image"
    image_size: int | None = None
    grayscale: bool = False
    frames: int = 8
    sample_rate: int = 16000
    n_mels: int = 64
    seconds: float | None = None

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
        from alsql.media.audio import decode_audio

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
