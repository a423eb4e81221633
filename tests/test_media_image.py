"""Image probe and decode: pixel limit from the header, truncated files, reduce before convert."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from alsql.media.image import TooManyPixels, decode, probe


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_bomb_is_refused_from_the_header_without_decoding():
    data = _bytes(Image.new("1", (20000, 20000)), "PNG")
    assert len(data) < 200_000
    with pytest.raises(TooManyPixels, match=r"too many pixels: 20000 x 20000 > 64,000,000"):
        probe(data)
    with pytest.raises(TooManyPixels):
        decode(data, 32)
    with pytest.raises(TooManyPixels, match="> 100"):
        decode(_bytes(Image.new("L", (20, 20)), "PNG"), 8, max_pixels=100)


def test_truncated_jpeg_and_png_fail_the_probe():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    jpeg, png = _bytes(img, "JPEG"), _bytes(img, "PNG")
    assert probe(jpeg) == {"media_type": "image/jpeg", "width": 160, "height": 120}
    with pytest.raises(OSError, match="truncated"):
        probe(jpeg[: len(jpeg) * 2 // 3])
    with pytest.raises((OSError, SyntaxError)):
        probe(png[: len(png) - 20])


def test_large_image_is_reduced_before_conversion(monkeypatch):
    rng = np.random.default_rng(1)
    big = Image.fromarray(rng.integers(0, 256, (1200, 1600), dtype=np.uint8), mode="L")
    jpeg = _bytes(big.convert("RGB"), "JPEG")
    converted: list[tuple[int, int]] = []
    real = Image.Image.convert

    def spy(self, *a, **kw):
        converted.append(self.size)
        return real(self, *a, **kw)

    monkeypatch.setattr(Image.Image, "convert", spy)
    out = decode(_bytes(big, "PNG"), 32, "RGB")
    assert out.size == (32, 32) and out.mode == "RGB"
    assert converted and max(w * h for w, h in converted) <= 64 * 64 * 4  # never at 1600 x 1200
    converted.clear()
    out = decode(jpeg, 32, "RGB")
    assert out.size == (32, 32) and max(w * h for w, h in converted) <= 64 * 64 * 4


def test_small_images_decode_as_before():
    rng = np.random.default_rng(2)
    img = Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))
    data = _bytes(img, "PNG")
    want = img.convert("L").resize((32, 32), Image.BILINEAR)
    assert np.array_equal(np.asarray(decode(data, 32, "L")), np.asarray(want))
    assert np.array_equal(np.asarray(decode(data, None, "RGB")), np.asarray(img))


def test_pixel_limit_comes_from_the_settings():
    from alsql.config import Settings, set_settings

    data = _bytes(Image.new("L", (30, 30)), "PNG")
    set_settings(Settings(max_pixels=800))
    try:
        with pytest.raises(TooManyPixels, match=r"30 x 30 > 800"):
            probe(data)
        with pytest.raises(TooManyPixels):
            decode(data, 8)
    finally:
        set_settings(None)
    assert probe(data)["width"] == 30
