"""Bounded work in audio decoding: clips resampled block by block as they are decoded,
absurd sample rates refused, and a spectrogram path that never loads torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from alsql.media.audio import MAX_SAMPLE_RATE, read_audio
from alsql.media.kinds import MediaRefused
from alsql.stores import path_to_uri


def _tone(path, sr, seconds, channels=1, freq=1000.0):
    import soundfile as sf

    t = np.arange(int(sr * seconds)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 37 * t)
    sf.write(str(path), np.repeat(wave[:, None], channels, axis=1).astype(np.float32), sr, subtype="PCM_16")
    return path


def test_high_rate_clip_is_resampled_in_bounded_blocks(tmp_path):
    from scipy.signal import resample_poly

    import soundfile as sf

    sr, seconds = 384_000, 8.0
    path = _tone(tmp_path / "bat.wav", sr, seconds, channels=2)
    uri = path_to_uri(path)
    raw = int(sr * seconds) * 2 * 4  # the clip as float32 frames at the source rate
    tracemalloc.start()
    try:
        wave = read_audio(uri, 0.5, 8.0, 16000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < raw / 8, f"peak {peak:,} bytes for a clip of {raw:,} bytes at {sr} Hz"
    assert wave.dtype == np.float32 and len(wave) == 120000
    # The same samples as resampling the whole clip at once.
    data, _ = sf.read(str(path), start=int(0.5 * sr), stop=int(8.0 * sr), dtype="float32", always_2d=True)
    whole = resample_poly(data.mean(axis=1), 1, 24).astype(np.float32)
    np.testing.assert_allclose(wave, whole, atol=1e-5)


def test_block_resampler_equals_resampling_at_once():
    from scipy.signal import resample_poly

    from alsql.media.resample import BlockResampler, ratio

    rng = np.random.default_rng(3)
    for src, dst in ((44100, 16000), (8000, 16000), (96000, 16000), (22050, 16000), (16000, 16000)):
        x = rng.standard_normal(int(rng.integers(1, 200_000)))
        r = BlockResampler(src, dst, block=5000)
        parts, i = [], 0
        while i < len(x):
            k = int(rng.integers(1, 12_000))
            parts.append(r.push(x[i : i + k]))
            i += k
        parts.append(r.finish())
        up, down = ratio(src, dst)
        np.testing.assert_allclose(np.concatenate(parts), resample_poly(x, up, down), atol=1e-5, err_msg=f"{src}")


def test_a_rate_over_the_limit_is_refused_at_decode(tmp_path):
    import struct

    from alsql.web.spectrogram import clip_png

    rate = 200_000_000
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"\x01\x00" * 8000
    path = tmp_path / "claims.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
                     + fmt + b"data" + struct.pack("<I", len(body)) + body)
    expected = f"sample rate of 200,000,000 Hz, over the limit of {MAX_SAMPLE_RATE:,} Hz"
    with pytest.raises(MediaRefused, match=expected):
        read_audio(path_to_uri(path), 0.0, 0.00001, 16000)
    with pytest.raises(MediaRefused, match=expected):
        clip_png(path_to_uri(path), 0.0, 0.00001)


def test_numpy_log_mel_equals_the_networks_log_mel(tmp_path):
    from alsql.media.audio import log_mel
    from alsql.media.melspec import log_mel_array

    rng = np.random.default_rng(0)
    for sr, n in ((16000, 16000), (16000, 100), (8000, 12345)):
        x = rng.standard_normal(n).astype(np.float32) * 0.1
        np.testing.assert_allclose(log_mel_array(x, sr, 40), log_mel(x, sr, 40)[0].numpy(), atol=2e-3, rtol=1e-4)


def test_spectrogram_path_does_not_import_torch(tmp_path):
    """Nor scipy.signal: each costs seconds on the first request after the server starts."""
    wav = _tone(tmp_path / "hum.wav", 44100, 3.0)
    code = textwrap.dedent(f"""
        import sys
        from alsql.web import spectrogram
        png = spectrogram.clip_png({path_to_uri(wav)!r}, 1.0, 2.0)
        assert png.startswith(b"\\x89PNG"), png[:8]
        print(sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m == "scipy.signal"))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
