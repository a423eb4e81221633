"""Video files: probe at ingest, decode one segment to T frames on the fly (PyAV).

``decode_video`` seeks (``container.seek`` on the stream's time base, to the key frame
at or before the segment) and decodes forward only until the segment's last frame is
reached: never the whole file. Frames between the key frame and the segment are
decoded but not converted. Only the T chosen frames, already resized, are kept, and at
most ``OPEN_CONTAINERS`` containers stay open per process: memory per worker is
bounded whatever the file's length.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Any

import numpy as np

from alsql.media.kinds import MediaError, MediaRefused, extension
from alsql.media.rangeio import decoder_source, open_media

__all__ = ["VIDEO_TYPES", "probe_video", "decode_video", "creation_time", "stream_duration", "open_container", "close_containers"]

VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
}
OPEN_CONTAINERS = 2

_LOCAL = threading.local()  # each thread its own containers (a container is not thread-safe)


def stream_duration(container: Any, stream: Any) -> float:
    """Seconds of ``stream`` (its own duration, else the container's); MediaError when neither says."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    raise MediaError("no duration in the container")


def creation_time(*metadata: dict) -> datetime | None:
    """The ``creation_time`` tag of a container or stream, as UTC; None when absent or unreadable."""
    for md in metadata:
        value = (md or {}).get("creation_time")
        if not value:
            continue
        try:
            t = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return None


def _open(uri: str, source: Any):
    """PyAV's input container over ``source`` (an open file of ``uri``, or what
    ``decoder_source`` gives for one); the caller closes the container, then the file."""
    import av

    return av.open(source, mode="r", metadata_errors="ignore")


def _cache() -> OrderedDict:
    """This thread's open containers; after a fork the parent's are dropped, never shared."""
    if getattr(_LOCAL, "pid", None) != os.getpid():
        _LOCAL.cache, _LOCAL.pid = OrderedDict(), os.getpid()
    return _LOCAL.cache


def open_container(uri: str):
    """An open input container for ``uri`` from this thread's small cache (``OPEN_CONTAINERS``;
    each entry holds the container and its checked file, closed together on eviction)."""
    cache = _cache()
    held = cache.get(uri)
    if held is not None:
        cache.move_to_end(uri)
        return held[0]
    fh = open_media(uri)  # confined for a local file: MediaError when refused
    try:
        c = _open(uri, decoder_source(fh))
    except BaseException:
        fh.close()
        raise
    cache[uri] = (c, fh)
    while len(cache) > OPEN_CONTAINERS:
        _, old = cache.popitem(last=False)
        _close(old)
    return c


def _close(held: tuple[Any, Any]) -> None:
    """Close a cached container, then its file."""
    try:
        held[0].close()
    finally:
        held[1].close()


def close_containers() -> None:
    """Close this thread's cached containers."""
    cache = _cache()
    while cache:
        _, held = cache.popitem()
        _close(held)


def _stream_times(stream) -> tuple[float, float]:
    """``(start offset seconds, frame duration seconds)`` of a video stream."""
    t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    dt = 1.0 / float(rate) if rate else 1.0 / 25.0
    return t0, dt


def _check_pixels(width: int, height: int, max_pixels: int | None, where: str) -> None:
    if max_pixels is not None and (width or 0) * (height or 0) > max_pixels:
        raise MediaRefused(f"frames of {width}x{height} pixels, over the limit of {max_pixels:,} pixels ({where})")


def probe_video(uri: str, source: Any = None, max_pixels: int | None = None) -> dict[str, Any]:
    """media_type, duration (s), rate (fps), width, height, channels (of an audio stream, if
    any), start_time (container ``creation_time``). Raises for a file with no video stream,
    an undecodable one, or one whose frames stop well before its stated duration (truncated).
    ``source``: an open binary file of ``uri`` to read instead of opening it. ``max_pixels``:
    ``MediaRefused`` when the stream's header claims larger frames, before any frame is
    decoded (and when the first decoded frame is larger, before the tail is decoded)."""
    with open_media(uri) if source is None else nullcontext(source) as fh, _open(uri, decoder_source(fh)) as c:
        if not c.streams.video:
            raise MediaError("no video stream")
        s = c.streams.video[0]
        _check_pixels(s.codec_context.width, s.codec_context.height, max_pixels, "from the header, not decoded")
        t0, dt = _stream_times(s)
        duration = stream_duration(c, s)
        first = None
        for frame in c.decode(s):
            first = frame
            break
        if first is None:
            raise MediaError("no decodable video frame")
        width, height = first.width, first.height
        _check_pixels(width, height, max_pixels, "the first frame")
        # The tail decodes too (a truncated file stops early or fails here).
        c.seek(int(max(0.0, duration - 1.0) / s.time_base) + (s.start_time or 0), stream=s, backward=True)
        last = None
        for frame in c.decode(s):
            if frame.time is not None:
                last = frame.time - t0
        if last is None or last + dt < duration - max(2 * dt, 1.0, 0.01 * duration):
            where = "no frame in its last second" if last is None else f"frames stop at {last + dt:.2f} s"
            raise MediaError(f"truncated: {where} of the stated {duration:.2f} s")
        channels = None
        if c.streams.audio:
            a = c.streams.audio[0]
            channels = getattr(a, "channels", None) or a.codec_context.layout.nb_channels
        return {
            "media_type": VIDEO_TYPES.get(extension(uri), "video/" + (c.format.name.split(",")[0] or "unknown")),
            "duration": duration,
            "rate": 1.0 / dt,
            "width": width,
            "height": height,
            "channels": channels,
            "start_time": creation_time(c.metadata, s.metadata),
        }


def _targets(start: float, end: float, frames: int) -> np.ndarray:
    """``frames`` times evenly spaced in ``[start, end)`` (centres of equal parts)."""
    step = (end - start) / frames
    return start + (np.arange(frames) + 0.5) * step


def decode_video(uri: str, start: float, end: float | None, frames: int = 8, size: int = 64):
    """The segment ``[start, end)`` of the video at ``uri`` -> ``(frames, 3, size, size)``
    float32 torch tensor in [0, 1]: for each of ``frames`` evenly spaced times, the frame shown then."""
    import av
    import torch

    if frames < 1 or size < 1:
        raise MediaError(f"frames {frames} / size {size}: expected positive numbers")
    c = open_container(uri)
    try:
        if not c.streams.video:
            raise MediaError("no video stream")
        s = c.streams.video[0]
        t0, dt = _stream_times(s)
        if end is None:
            end = start + 2.0
        targets = _targets(start, end, frames)
        c.seek(int(max(0.0, start) / s.time_base) + (s.start_time or 0), stream=s, backward=True)
        out = np.zeros((frames, size, size, 3), dtype=np.uint8)
        i = 0
        last_arr = None
        for frame in c.decode(s):
            if frame.time is None:
                continue
            t = frame.time - t0
            if t + dt <= targets[i]:
                continue
            last_arr = frame.reformat(width=size, height=size, format="rgb24").to_ndarray()
            while i < frames and targets[i] < t + dt:
                out[i] = last_arr
                i += 1
            if i == frames or t >= end:
                break
        if last_arr is None:
            raise MediaError(f"no frame in [{start:g}, {end:g}) s")
        out[i:] = last_arr  # past the last frame of the file: hold it
    except av.error.FFmpegError:
        held = _cache().pop(uri, None)
        if held is not None:
            _close(held)
        else:
            c.close()
        raise
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)
