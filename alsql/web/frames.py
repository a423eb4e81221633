"""One frame of a video file as a small JPEG (the labeling page's strip of neighbours).

``frame_jpeg(uri, at, width)`` opens the file as the image route does
(``alsql.loaders.confine.open_checked``: a local file must be a regular file reached
through no symbolic link, at most the ingest size cap for video; another store is read
by ranges), refuses a stream whose header claims more pixels than the pixel limit
(``alsql.media.image.max_pixels_setting``) before decoding anything, seeks to the key
frame at or before ``at`` (PyAV, on the stream's time base) and decodes forward to the
frame shown at ``at`` seconds, at most ``MAX_DECODED`` frames: never the whole file. Only
that frame is converted, straight to ``width`` pixels wide (its aspect ratio kept).
"""

from __future__ import annotations

import io

__all__ = ["FrameError", "frame_jpeg", "MAX_DECODED"]

MAX_DECODED = 600  # frames decoded after the seek at most (a long key-frame interval ends here)


class FrameError(ValueError):
    """No frame can be served: the file is refused, unreadable or has no decodable frame."""


class _ServedStore:
    """The one method ``RangeFile`` asks of a store, over a checked blob (``confine.Served``)."""

    def __init__(self, served) -> None:
        self.served = served

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        return self.served.read_at(start, length)


def _open(uri: str):
    from alsql.errors import AlsqlError
    from alsql.loaders.confine import NotRegular, open_checked
    from alsql.loaders.ingest import DEFAULT_MAX_BYTES

    try:
        return open_checked(uri, DEFAULT_MAX_BYTES["video"])
    except FileNotFoundError:
        raise FrameError("the file is missing") from None
    except (NotRegular, AlsqlError, OSError) as exc:
        raise FrameError(str(exc).removeprefix(f"{uri}: ")) from None


def frame_jpeg(uri: str, at: float, width: int = 160, quality: int = 80) -> bytes:
    """The frame of the video at ``uri`` shown at ``at`` seconds (from the stream's start) as
    a JPEG ``width`` pixels wide. ``FrameError`` when the file is refused or unreadable,
    its header claims too many pixels, or no frame decodes."""
    import av

    from alsql.media.image import max_pixels_setting
    from alsql.media.rangeio import RangeFile

    served = _open(uri)
    try:
        blob = RangeFile(uri, store=_ServedStore(served), size=served.size)
        with av.open(blob, mode="r", metadata_errors="ignore") as c:
            if not c.streams.video:
                raise FrameError("no video stream")
            s = c.streams.video[0]
            w, h, limit = s.codec_context.width or 0, s.codec_context.height or 0, max_pixels_setting()
            if w * h > limit:
                raise FrameError(f"too many pixels: {w} x {h} > {limit}")
            tb = s.time_base
            t0 = float(s.start_time * tb) if s.start_time is not None and tb else 0.0
            c.seek(int(max(0.0, at) / tb) + (s.start_time or 0), stream=s, backward=True)
            chosen = None
            for k, frame in enumerate(c.decode(s)):
                if frame.time is not None and frame.time - t0 > at + 1e-6 and chosen is not None:
                    break  # the next frame: the one before it is shown at `at`
                chosen = frame
                if k + 1 >= MAX_DECODED:
                    break
            if chosen is None:
                raise FrameError(f"no frame at {at:g} s")
            height = max(1, round(width * chosen.height / max(1, chosen.width)))
            img = chosen.to_image(width=width, height=height)
    except av.error.FFmpegError as exc:
        raise FrameError(f"undecodable: {exc.__class__.__name__}") from None
    finally:
        served.close()
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
