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
conversion, so no full-size RGB copy of a large image is ever made. Images at most
twice ``size`` decode exactly as ``convert`` then bilinear ``resize``.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

__all__ = ["DEFAULT_MAX_PIXELS", "TooManyPixels", "max_pixels_setting", "check_pixels", "probe", "decode"]

DEFAULT_MAX_PIXELS = 64_000_000
# Pillow's own guard stays as a backstop (it raises at twice this on open).
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F", "YCbCr"})


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
        im.load()
        img = im
        if size is not None and im.mode in _REDUCIBLE:
            factor = min(im.width // size, im.height // size)
            if factor >= 2:
                img = im.reduce(factor)
        img = img.convert(mode)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return img
