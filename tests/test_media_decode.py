"""Decoding segments: shapes, seeking to the right time, ranged reads, log-mel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alsql import stores
from alsql.stores import LocalStore, path_to_uri
from alsql.media.audio import log_mel, mel_filterbank, read_audio, resample
from alsql.media.kinds import MediaSpec, decode_item, fragment_uri
from alsql.media.rangeio import RangeFile
from alsql.media.video import close_containers, decode_video
from tests.media_support import brightness, make_tone, make_video


def test_video_segment_frames_come_from_inside_the_segment(tmp_path):
    fps, seconds = 10, 8
    uri = path_to_uri(make_video(tmp_path / "v.mp4", seconds=seconds, fps=fps, size=32))
    n = fps * seconds
    x = decode_item(fragment_uri(uri, 4, 6), MediaSpec(kind="video", image_size=16, frames=8))
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32
    levels = (x.mean(dim=(1, 2, 3)) * 255).numpy()
    lo, hi = brightness(4 * fps, n), brightness(6 * fps - 1, n)
    assert np.all(levels >= lo - 4) and np.all(levels <= hi + 4), (levels, lo, hi)
    assert np.all(np.diff(levels) > 0)  # eight distinct frames, in order
    # Earlier and later segments, decoded after (the open container seeks back and forth).
    for a, b in ((0, 2), (6, 8), (2, 4)):
        y = decode_video(uri, a, b, frames=4, size=8)
        lv = (y.mean(dim=(1, 2, 3)) * 255).numpy()
        assert np.all(lv >= brightness(a * fps, n) - 4) and np.all(lv <= brightness(b * fps - 1, n) + 4), (a, lv)
    close_containers()


def _stepped_tone(path, sr=8000, seconds=6):
    """Second k is a tone of 200 + 100 k Hz."""
    t = np.arange(sr * seconds) / sr
    f = 200 + 100 * np.floor(t)
    phase = 2 * np.pi * np.cumsum(f) / sr
    import soundfile as sf

    sf.write(str(path), (0.5 * np.sin(phase)).astype(np.float32), sr)
    return path


def _peak_hz(wave, sr):
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.fft.rfftfreq(len(wave), 1 / sr)[spec.argmax()]


@pytest.mark.parametrize("ext", ["wav", "flac", "m4a", "mp3"])
def test_audio_clip_is_read_at_its_offset(tmp_path, ext):
    wav = _stepped_tone(tmp_path / "s.wav")
    path = wav
    if ext != "wav":
        import soundfile as sf

        data, sr = sf.read(str(wav), dtype="float32")
        path = tmp_path / f"s.{ext}"
        if ext == "flac":
            sf.write(str(path), data, sr)
        else:
            import av

            with av.open(str(path), "w") as c:
                s = c.add_stream("aac" if ext == "m4a" else "libmp3lame", rate=sr)
                s.layout = "mono"
                for k in range(0, len(data), 1024):
                    fr = av.AudioFrame.from_ndarray(data[None, k : k + 1024], format="fltp", layout="mono")
                    fr.sample_rate, fr.pts = sr, k
                    for p in s.encode(fr):
                        c.mux(p)
                for p in s.encode():
                    c.mux(p)
    uri = path_to_uri(path)
    w = read_audio(uri, 3.0, 4.0, 16000)
    assert w.shape == (16000,) and w.dtype == np.float32
    assert abs(_peak_hz(w[2000:14000], 16000) - 500) < 15  # second 3 is 500 Hz
    spec = decode_item(fragment_uri(uri, 3, 4), MediaSpec(kind="audio", sample_rate=16000, n_mels=40))
    assert spec.shape == (1, 40, 101) and torch.isfinite(spec).all()


def test_short_clip_is_padded_to_the_spec_length(tmp_path):
    uri = path_to_uri(make_tone(tmp_path / "a.wav", seconds=2.5, sr=8000))
    spec = MediaSpec(kind="audio", sample_rate=8000, n_mels=32, seconds=1.0)
    full = decode_item(fragment_uri(uri, 0, 1), spec)
    tail = decode_item(fragment_uri(uri, 2, 2.5), spec)
    assert full.shape == tail.shape == (1, 32, 101)
    assert tail[0, :, -10:].max() < full[0, :, -10:].min()  # the padding is silence


def test_log_mel_and_filterbank():
    fb = mel_filterbank(16000, 512, 40)
    assert fb.shape == (40, 257) and (fb >= 0).all() and (fb.sum(dim=1) > 0).all()
    sr = 16000
    t = np.arange(sr) / sr
    low = log_mel(np.sin(2 * np.pi * 300 * t), sr, 40)
    high = log_mel(np.sin(2 * np.pi * 3000 * t), sr, 40)
    assert low.shape == (1, 40, 101)
    assert low[0].mean(dim=1).argmax() < high[0].mean(dim=1).argmax()
    assert resample(np.ones(8000, np.float32), 8000, 16000).shape == (16000,)


class CountingStore(LocalStore):
    """A local folder under the scheme ``cnt://`` that counts the bytes it hands out."""

    read = 0

    @staticmethod
    def _local(uri):
        return "file://" + uri[len("cnt://"):]

    def size(self, uri):
        return super().size(self._local(uri))

    def read_range(self, uri, start, length):
        data = super().read_range(self._local(uri), start, length)
        CountingStore.read += len(data)
        return data

    def open(self, uri, max_bytes=None):  # pragma: no cover - the decoders must not read whole blobs
        raise AssertionError("a media decoder read the whole blob")


@pytest.fixture
def counting():
    stores.register_store("cnt", CountingStore)
    CountingStore.read = 0
    yield
    stores._FACTORIES.pop("cnt", None)
    stores._CACHE.pop("cnt", None)


def test_remote_decoding_reads_by_range(tmp_path, counting, monkeypatch):
    from alsql.media import rangeio

    monkeypatch.setattr(rangeio, "BLOCK", 16 * 1024)  # small files here: small blocks
    path = make_video(tmp_path / "long.mp4", seconds=60, fps=10, size=64, pattern="left")
    uri = "cnt://" + str(path)
    size = path.stat().st_size
    f = RangeFile(uri, block_size=4096, cache_blocks=4)
    assert f.read(10) == path.read_bytes()[:10] and f.seek(-5, 2) == size - 5 and f.read() == path.read_bytes()[-5:]
    CountingStore.read = 0
    x = decode_item(fragment_uri(uri, 50, 52), MediaSpec(kind="video", image_size=16, frames=4))
    assert x.shape == (4, 3, 16, 16)
    assert 0 < CountingStore.read < size / 3, (CountingStore.read, size)  # a seek, not the whole file
    close_containers()
    wav = make_tone(tmp_path / "long.wav", seconds=120, sr=8000)
    CountingStore.read = 0
    y = decode_item(fragment_uri("cnt://" + str(wav), 100, 101), MediaSpec(kind="audio", sample_rate=8000))
    assert y.shape[0] == 1 and CountingStore.read < wav.stat().st_size / 10


@pytest.mark.parametrize("ext,codec", [("webm", "libvpx-vp9"), ("avi", "mpeg4"), ("mov", "libx264"),
                                       ("mkv", "libx264")])
def test_every_video_container_probes_and_seeks(tmp_path, ext, codec):
    from alsql.media.video import probe_video

    fps, seconds = 10, 8
    uri = path_to_uri(make_video(tmp_path / f"v.{ext}", seconds=seconds, fps=fps, size=32, codec=codec))
    info = probe_video(uri)
    assert abs(info["duration"] - seconds) < 0.2 and info["rate"] == fps and info["width"] == 32
    levels = (decode_video(uri, 4, 6, frames=4, size=8).mean(dim=(1, 2, 3)) * 255).numpy()
    n = fps * seconds
    assert np.all(levels >= brightness(4 * fps, n) - 4) and np.all(levels <= brightness(6 * fps - 1, n) + 4), levels
    close_containers()
