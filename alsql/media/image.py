"""Images: probe at ingest, bounded decode in the loaders.

``probe(data, max_pixels)`` reads the header, refuses an image of more than
``max_pixels`` pixels before decoding anything (``TooManyPixels``: "too many pixels:
W x H > limit"), then checks that the whole stream decodes, cheaply: a JPEG is decoded
at 1/8 scale (its DCT scaling, ``Image.draft``), which still reads every byte, so a
truncated file fails; PNG chunks are checked by ``verify`` (CRCs and the end marker);
other formats are loaded (bounded by the pixel limit).

``decode(data, size, mode, max_pixels)`` turns bytes into a PIL image of ``mode``
resized to ``size`` x ``size``: the pixel limit is checked from the header, a JPEG is
drafted to the smallest DCT scale at least ``size`` on each side, and an image at least
twice ``size`` is reduced by an integer factor (``Image.reduce``) *before* the mode
conversion, so no full-size copy of a large image is ever made: modes that cannot be
reduced (palette, bilevel, 16-bit) and those with alpha (which ``reduce`` would copy
premultiplied) are converted and reduced strip by strip (``STRIP_PIXELS`` at a time). Images at most twice ``size`` decode exactly as ``convert`` then
bilinear ``resize``; larger ones as ``convert``, ``reduce``, then ``resize``.

Memory: one decode holds the image decoded once in its own mode (at most ``max_pixels``
x 4 bytes; a JPEG at its drafted scale) plus a strip and the small result. Within a
process, full-size decodes above ``SMALL_DECODE`` bytes share ``DECODE_BUDGET`` bytes
(``DecodeBudget``): a reader thread waits while others hold it, so a pool of fetch
threads decoding large images never holds more than the budget (or one image, when a
single one is larger).
"""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from typing import Any

from PIL import Image

__all__ = ["DEFAULT_MAX_PIXELS", "DECODE_BUDGET", "SMALL_DECODE", "STRIP_PIXELS", "TooManyPixels", "DecodeBudget",
           "max_pixels_setting", "check_pixels", "probe", "decode", "decoded_bytes"]

DEFAULT_MAX_PIXELS = 64_000_000
# Pillow's own guard stays as a backstop (it raises at twice this on open).
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "YCbCr"})
_ALPHA = frozenset({"LA", "RGBA"})  # Image.reduce premultiplies these in a full-size copy
_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "RGB": 3,
          "YCbCr": 3, "LAB": 3, "HSV": 3}
STRIP_PIXELS = 1 << 20  # pixels per strip converted at once when a mode cannot be reduced before conversion
DECODE_BUDGET = 512 << 20  # bytes of full-size decoded images held at once by one process
SMALL_DECODE = 16 << 20  # decodes up to this many bytes do not wait for the budget


class DecodeBudget:
    """Bytes of full-size decoded images held at once in this process, at most ``limit``:
    ``hold(n)`` waits while others hold the budget and ``n`` does not fit (one request larger
    than the whole budget runs alone). ``peak`` is the most ever held (tests and benchmarks)."""

    def __init__(self, limit: int = DECODE_BUDGET) -> None:
        self.limit, self.held, self.peak = int(limit), 0, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, n: int):
        with self._cond:
            while self.held and self.held + n > self.limit:
                self._cond.wait()
            self.held += n
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            with self._cond:
                self.held -= n
                self._cond.notify_all()


BUDGET = DecodeBudget()


def decoded_bytes(width: int, height: int, mode: str) -> int:
    """Bytes Pillow holds for a ``width`` x ``height`` image in ``mode`` (4 per pixel when unknown)."""
    return width * height * _BYTES.get(mode, 4)


class TooManyPixels(ValueError):
    """An image whose header declares more pixels than the limit (never decoded)."""


def max_pixels_setting() -> int:
    """The pixel limit in force: ``settings.max_pixels`` (``ALSQL_MAX_PIXELS``), else the default."""
    from alsql.config import get_settings

    return int(getattr(get_settings(), "max_pixels", None) or DEFAULT_MAX_PIXELS)


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Raise ``TooManyPixels`` when ``width * height`` exceeds ``max_pixels``."""
    if width * height > max_pixels:
        raise TooManyPixels(f"too many pixels: {width} x {height} > {max_pixels:,}")


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # beyond Pillow's own backstop
        raise TooManyPixels(f"too many pixels: {exc}") from None


def probe(data: bytes, max_pixels: int | None = None) -> dict[str, Any]:
    """``{media_type, width, height}`` of image bytes whose whole stream decodes.

    Raises ``TooManyPixels`` (header over the limit) or Pillow's error (OSError,
    SyntaxError, ValueError...) for bytes that are not a complete image.
    """
    limit = max_pixels if max_pixels is not None else max_pixels_setting()
    with _open(data) as im:
        fmt = im.format
        width, height = im.size
        check_pixels(width, height, limit)
        if fmt == "JPEG":
            im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
            im.load()
        elif fmt == "PNG":
            im.verify()
        else:
            im.load()
    return {
        "media_type": Image.MIME.get(fmt, f"image/{fmt.lower()}") if fmt else None,
        "width": width,
        "height": height,
    }


def decode(data: bytes, size: int | None = None, mode: str = "RGB", max_pixels: int | None = None) -> Image.Image:
    """Image bytes -> a loaded PIL image in ``mode``, ``size`` x ``size`` when ``size`` is given.

    Raises ``TooManyPixels`` for an image over ``max_pixels`` (default: the setting)
    and Pillow's error for bytes that do not decode.
    """
    limit = max_pixels if max_pixels is not None else max_pixels_setting()
    with _open(data) as im:
        check_pixels(im.width, im.height, limit)
        if size is not None and im.format == "JPEG":
            im.draft(mode if mode in ("RGB", "L") else None, (size, size))
        need = decoded_bytes(im.width, im.height, im.mode)  # after the draft: what load() allocates
        with BUDGET.hold(need) if need > SMALL_DECODE else _nothing():
            im.load()
            factor = min(im.width // size, im.height // size) if size is not None else 1
            img = _reduced(im, factor, mode) if factor >= 2 else im.convert(mode)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return img


@contextmanager
def _nothing():
    yield


def _reduced(im: Image.Image, factor: int, mode: str) -> Image.Image:
    """``im.convert(mode).reduce(factor)`` without a full-size copy of ``im`` (a reducible mode
    without alpha is reduced before its conversion, as before; the others strip by strip)."""
    if im.mode in _REDUCIBLE and im.mode not in _ALPHA:
        return im.reduce(factor).convert(mode)
    rows = factor * max(1, STRIP_PIXELS // (im.width * factor))  # whole blocks of factor x factor per strip
    out = Image.new(mode, (-(-im.width // factor), -(-im.height // factor)))
    for top in range(0, im.height, rows):
        strip = im.crop((0, top, im.width, min(im.height, top + rows))).convert(mode).reduce(factor)
        out.paste(strip, (0, top // factor))
    return out
