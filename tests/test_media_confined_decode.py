"""The decoders open local media confined (SQLite and PostgreSQL): after ingest, a video and a
WAV swapped for a symbolic link to a file outside the folder, or for a FIFO, are refused by
the spectrogram and thumbnail routes (404 with the reason, never a hang) and by the decode
the loaders run (``MediaError``, the item reported corrupt), instead of reading the outside
file; and decoding closes every descriptor it opens."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from alsql.media.kinds import MediaError, MediaSpec, decode_item, fragment_uri
from alsql.schema import items
from alsql.stores import path_to_uri
from tests.media_support import make_tone, make_video
from tests.test_web_context import ctx_app  # noqa: F401 - the web fixture (both backends)

VIDEO_SPEC = MediaSpec(kind="video", image_size=32, frames=4)
AUDIO_SPEC = MediaSpec(kind="audio", sample_rate=16000, n_mels=32, seconds=1.0)
REASON = {"link": "symbolic link", "fifo": "not a regular file"}


def _unblock(fifo: Path) -> None:
    """Open the FIFO's write end and close it, so a reader blocked on it gets EOF."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _within(fn, fifos: tuple[Path, ...] = (), seconds: float = 60.0):
    """``fn()`` run in a thread; fails (after unblocking ``fifos``) when it has not returned in
    ``seconds``. Returns ``("ok", value)`` or ``("raised", exception)``."""
    out: list = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(("raised", exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    blocked = t.is_alive()
    if blocked:
        for f in fifos:
            _unblock(f)
        t.join(seconds)
    assert not blocked, "blocked on a FIFO"
    return out[0]


def _swap(path: Path, how: str, outside: Path) -> None:
    """Replace ``path`` by a link to ``outside`` or by a FIFO."""
    path.unlink()
    if how == "link":
        os.symlink(outside, path)
    else:
        os.mkfifo(path)


@pytest.fixture
def outside(tmp_path):
    """A playable video and WAV outside the ingested folder (other content than the originals)."""
    return {"video": make_video(tmp_path / "secret.mp4", seconds=10, fps=10, size=32, pattern="left"),
            "audio": make_tone(tmp_path / "secret.wav", seconds=3, sr=16000, freq=1500.0)}


@pytest.mark.parametrize("how", ["link", "fifo"])
def test_spectrogram_and_thumbnail_routes_refuse_a_swapped_file(ctx_app, outside, how):
    c, h, root, ids = ctx_app["client"], ctx_app["h"], ctx_app["root"], ctx_app["ids"]
    spec_url = f"/api/items/{ids['audio'][1]}/spectrogram.png"
    thumb_url = f"/api/items/{ids['video'][0]}/thumbnail.jpg"
    assert c.get(spec_url, headers=h).status_code == 200
    assert c.get(thumb_url, headers=h).status_code == 200
    wav, mp4 = root / "pump.wav", root / "cam-012.mp4"
    _swap(wav, how, outside["audio"])
    _swap(mp4, how, outside["video"])
    for url, item in ((spec_url, ids["audio"][1]), (thumb_url, ids["video"][0])):
        done, r = _within(lambda url=url: c.get(url, headers=h), fifos=(wav, mp4))
        assert done == "ok", r
        assert r.status_code == 404, (url, r.status_code)
        detail = r.json()["detail"]
        assert f"item {item}" in detail and REASON[how] in detail, detail


def _segment_uris(engine) -> dict[str, str]:
    with engine.connect() as conn:
        uris = conn.execute(select(items.c.uri).where(items.c.uri.like("%#t=%"))).scalars().all()
    return {"video": next(u for u in uris if "/cam-012.mp4#t=0," in u),
            "audio": next(u for u in uris if "/pump.wav#t=1," in u)}


@pytest.mark.parametrize("how", ["link", "fifo"])
def test_decoding_for_training_refuses_a_swapped_file(ctx_app, engine, outside, how):
    root = ctx_app["root"]
    uris = _segment_uris(engine)
    specs = {"video": VIDEO_SPEC, "audio": AUDIO_SPEC}
    for kind in ("video", "audio"):                      # the originals decode
        assert tuple(decode_item(uris[kind], specs[kind]).shape)[0] in (4, 1)
    from alsql.media.video import close_containers

    close_containers()  # what a new DataLoader worker has: no container opened before the swap
    wav, mp4 = root / "pump.wav", root / "cam-012.mp4"
    _swap(wav, how, outside["audio"])
    _swap(mp4, how, outside["video"])
    for kind in ("video", "audio"):
        done, exc = _within(lambda kind=kind: decode_item(uris[kind], specs[kind]), fifos=(wav, mp4))
        assert done == "raised" and isinstance(exc, MediaError), (kind, done, exc)
        assert str(exc).startswith("refused: ") and REASON[how] in str(exc), exc
    # The loaders' decode reports the item corrupt with the reason (not missing), yields nothing.
    from alsql.loaders.media_rows import decoded_rows

    bad: list = []
    rows = [(1, uris["video"], 0), (2, uris["audio"], 0)]

    def decode_both():
        got = list(decoded_rows(rows[:1], VIDEO_SPEC, on_bad=lambda *a: bad.append(a)))
        return got + list(decoded_rows(rows[1:], AUDIO_SPEC, on_bad=lambda *a: bad.append(a)))

    done, got = _within(decode_both, fifos=(wav, mp4))
    assert done != "raised" and got == [], (done, got)
    assert [(i, status) for i, status, _ in bad] == [(1, "corrupt"), (2, "corrupt")], bad
    assert all("MediaError: refused: " in why and REASON[how] in why for _, _, why in bad), bad


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd")
def test_decoding_50_items_closes_every_descriptor(tmp_path):
    from alsql.media.video import OPEN_CONTAINERS, close_containers

    root = tmp_path / "media"
    videos = [make_video(root / f"cam-{i}.mp4", seconds=10, fps=10, size=32) for i in range(2)]
    sounds = [make_tone(root / "hum.wav", seconds=20, sr=8000), make_tone(root / "fan.mp3", seconds=10, sr=16000)]
    work = [(fragment_uri(path_to_uri(v), t, t + 2), VIDEO_SPEC) for v in videos for t in range(0, 10, 2)]
    work += [(fragment_uri(path_to_uri(s), t, t + 1), AUDIO_SPEC) for s in sounds for t in range(0, 20)
             if t + 1 <= (20 if s.suffix == ".wav" else 10)]
    assert len(work) == 40
    close_containers()
    before, peak = _open_fds(), 0
    for uri, spec in work + work[:10]:                  # 50 decodes, a video opened again at the end
        decode_item(uri, spec)
        peak = max(peak, _open_fds() - before)
    assert peak <= 2 * OPEN_CONTAINERS  # the cached containers: each its checked file (and a decoder's own)
    close_containers()
    assert _open_fds() == before
    # Refused and failed opens leave nothing open either.
    (root / "hum.wav").unlink()
    os.symlink(sounds[1], root / "hum.wav")
    (root / "cam-0.mp4").unlink()
    os.mkfifo(root / "cam-0.mp4")
    for uri, spec in work[:1] + work[10:11]:
        for _ in range(5):
            done, exc = _within(lambda uri=uri, spec=spec: decode_item(uri, spec), fifos=(root / "cam-0.mp4",))
            assert done == "raised" and isinstance(exc, MediaError) and str(exc).startswith("refused: "), exc
    assert _open_fds() == before
