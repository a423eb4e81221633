"""Video and sound under hostile input and bounded work (SQLite and PostgreSQL): the source
route opens files as the image route does, links to FIFOs are refused at ingest, absurd
sample rates and frame sizes are refused from the header, segment bounds and item caps."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alsql.loaders.ingest import ingest
from alsql.schema import items, sources
from tests.media_support import make_tone, make_video
from tests.web_support import users

SECRET = b"root:x:0:0:secret outside the folder\n" * 40


def _sources(engine) -> dict:
    with engine.connect() as conn:
        return {r.uri.rsplit("/", 1)[1]: r for r in conn.execute(select(sources))}


@pytest.fixture
def media_app(db_url, engine, tmp_path):
    from alsql.web import create_app

    root = tmp_path / "media"
    make_video(root / "cam.mp4", seconds=4)
    make_tone(root / "hum.wav", seconds=2)
    (tmp_path / "passwd").write_bytes(SECRET)
    assert ingest(engine, str(root)).new == 4
    app = create_app(db_url, "media-secret")
    headers = {"Authorization": f"Bearer {users(engine)['annotator']}"}
    with TestClient(app) as client:
        yield {"client": client, "headers": headers, "root": root, "secret": tmp_path / "passwd",
               "ids": {name: r.source_id for name, r in _sources(engine).items()}}
    app.state.engine.dispose()


def test_source_route_refuses_a_link_swapped_in_after_ingest(media_app):
    c, h, root = media_app["client"], media_app["headers"], media_app["root"]
    url = f"/api/sources/{media_app['ids']['cam.mp4']}/file"
    body = (root / "cam.mp4").read_bytes()
    assert c.get(url, headers=h).content == body
    part = c.get(url, headers=h | {"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == body[10:20]
    (root / "cam.mp4").unlink()
    os.symlink(media_app["secret"], root / "cam.mp4")
    for extra in ({}, {"Range": "bytes=0-99"}, {"Range": "bytes=-10"}):
        r = c.get(url, headers=h | extra)
        assert r.status_code == 404, extra
        assert b"root:x" not in r.content
        assert c.head(url, headers=h | extra).status_code == 404
    # A folder on the way swapped for a link to elsewhere is refused too.
    moved = root.parent / "moved"
    root.rename(moved)
    os.symlink(moved, root)
    wav = f"/api/sources/{media_app['ids']['hum.wav']}/file"
    assert c.get(wav, headers=h).status_code == 404
    assert c.get(wav, headers=h | {"Range": "bytes=0-9"}).status_code == 404


def test_source_route_refuses_a_fifo_and_a_file_over_the_cap(media_app, monkeypatch):
    c, h, root = media_app["client"], media_app["headers"], media_app["root"]
    wav = root / "hum.wav"
    url = f"/api/sources/{media_app['ids']['hum.wav']}/file"
    size = wav.stat().st_size
    from alsql.loaders import ingest as image_ingest

    monkeypatch.setitem(image_ingest.DEFAULT_MAX_BYTES, "audio", size - 1)
    r = c.get(url, headers=h | {"Range": "bytes=0-9"})
    assert r.status_code == 404 and "over the limit" in r.json()["detail"]
    monkeypatch.setitem(image_ingest.DEFAULT_MAX_BYTES, "audio", size)
    assert c.get(url, headers=h | {"Range": "bytes=0-9"}).status_code == 206
    wav.unlink()
    os.mkfifo(wav)
    r = c.get(url, headers=h)  # must not block on the FIFO
    assert r.status_code == 404 and "not a regular file" in r.json()["detail"]


def _ingest_with_deadline(engine, folder, seconds=120, **kw):
    """Ingest in a thread; fail (instead of hanging the suite) if it blocks on a FIFO."""
    import threading

    out: list = []
    t = threading.Thread(target=lambda: out.append(ingest(engine, str(folder), **kw)), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "ingest blocked"
    assert out, "ingest raised"
    return out[0]


def test_links_to_fifos_named_as_media_are_refused_and_the_rest_stored(engine, tmp_path):
    root = tmp_path / "media"
    make_video(root / "good.mp4", seconds=4)
    make_tone(root / "good.wav", seconds=2)
    os.mkfifo(root / "pipe.mp4")
    os.symlink("pipe.mp4", root / "link.mp4")  # a link inside the folder to a FIFO
    os.mkfifo(root / "sub.wav.fifo")
    os.symlink("sub.wav.fifo", root / "link.wav")  # named .wav, the FIFO is not
    os.symlink("/dev/zero", root / "zero.wav")  # a device (outside the folder)
    report = _ingest_with_deadline(engine, root)
    src = _sources(engine)
    assert src["good.mp4"].status == "ok" and src["good.wav"].status == "ok"
    with engine.connect() as conn:
        ok = conn.execute(select(items.c.uri).where(items.c.status == "ok")).scalars().all()
    assert len(ok) == 4 and all("/good." in u for u in ok)  # 2 video segments + 2 clips
    assert src["pipe.mp4"].status == "refused"
    assert src["pipe.mp4"].error.startswith("refused: not a regular file"), src["pipe.mp4"].error
    assert src["zero.wav"].status == "refused" and "symbolic link" in src["zero.wav"].error
    assert "link.mp4" not in src and "link.wav" not in src  # recorded under their targets' uris
    with engine.connect() as conn:
        fifo_item = conn.execute(select(items.c.status, items.c.error)
                                 .where(items.c.uri.like("%/sub.wav.fifo"))).first()
    assert fifo_item.status == "corrupt" and fifo_item.error.startswith("refused: not a regular file")
    assert report.refused >= 3
    # A file swapped for a link to a FIFO between listing and reading is refused as well.
    from alsql.loaders import confine

    with pytest.raises(confine.NotRegular):
        confine.open_regular(root / "link.mp4")


def _wav(path, rate: int, body: bytes, claimed: int | None = None):
    """A 16-bit mono PCM WAV whose header says ``rate`` Hz and ``claimed`` bytes of samples."""
    import struct

    n = len(body) if claimed is None else claimed
    fmt = struct.pack("<HHIIHH", 1, 1, rate, min(rate * 2, 0xFFFFFFFF), 2, 16)
    riff = min(4 + 8 + len(fmt) + 8 + n, 0xFFFFFFFF)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
                     + b"data" + struct.pack("<I", n) + body)
    return path


def _patched_webm(path):
    """A VP8 WebM of 256x256 frames whose track header claims 16000x16000."""
    make_video(path.with_name("small.webm"), seconds=2, size=256, codec="libvpx")
    data = path.with_name("small.webm").read_bytes()
    path.with_name("small.webm").unlink()
    for element in (b"\xb0", b"\xba"):  # PixelWidth, PixelHeight: 2-byte values, 256 -> 16000
        assert data.count(element + b"\x82\x01\x00") == 1
        data = data.replace(element + b"\x82\x01\x00", element + b"\x82\x3e\x80")
    path.write_bytes(data)
    return path


def test_huge_frames_and_absurd_rates_are_refused_from_the_header(engine, tmp_path, monkeypatch):
    from alsql.media import video

    root = tmp_path / "media"
    _patched_webm(root / "huge.webm")
    _wav(root / "fast.wav", 200_000_000, b"\x01\x00" * 4000)  # 200 MHz
    _wav(root / "faster.wav", 0xFFFFFFFF, b"\x01\x00" * 4000)  # 4.29 GHz
    make_tone(root / "fine.wav", seconds=2)
    decoded = []
    real_open = video._open

    def counting_open(uri, source=None):
        c = real_open(uri, source)
        real_decode = c.decode

        class Spy:
            def __getattr__(self, name):
                return getattr(c, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return c.__exit__(*exc)

            def decode(self, *a, **kw):
                decoded.append(uri)
                return real_decode(*a, **kw)

        return Spy()

    monkeypatch.setattr(video, "_open", counting_open)
    ingest(engine, str(root))
    src = _sources(engine)
    assert src["huge.webm"].status == "refused"
    assert src["huge.webm"].error == ("frames of 16000x16000 pixels, over the limit of 67,108,864 pixels "
                                      "(from the header, not decoded)")
    assert not any(u.endswith("huge.webm") for u in decoded)
    assert src["fast.wav"].status == "refused"
    assert src["fast.wav"].error == "sample rate of 200,000,000 Hz, over the limit of 768,000 Hz"
    assert src["faster.wav"].status == "refused" and "4,294,967,295 Hz" in src["faster.wav"].error
    assert src["fine.wav"].status == "ok"
    with engine.connect() as conn:
        owners = set(conn.execute(select(items.c.source_id)).scalars())
    assert owners == {src["fine.wav"].source_id}


def test_wav_header_claiming_more_than_the_file_holds_is_truncated(engine, tmp_path):
    root = tmp_path / "media"
    _wav(root / "claims-4gb.wav", 16000, b"\x01\x00" * 512, claimed=0xFFFFFFD0)  # 1 KB body
    _wav(root / "honest.wav", 16000, b"\x01\x00" * 32000)  # 2 s
    report = ingest(engine, str(root))
    src = _sources(engine)
    bad = src["claims-4gb.wav"]
    assert bad.status != "ok" and report.corrupt == 1
    assert bad.error == "MediaError: truncated: the header claims 4,294,967,248 bytes of samples, the file holds 1,024"
    assert src["honest.wav"].status == "ok" and report.new == 2


def _long_wav(path, hours: float, rate: int = 1000):
    """An 8-bit mono WAV of ``hours`` of silence at ``rate`` Hz, sparse on disk."""
    import struct

    n = int(hours * 3600 * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                 + b"data" + struct.pack("<I", n))
        fh.truncate(44 + n)
    return path


def test_segment_and_stride_have_a_lower_bound(engine, tmp_path, capsys):
    from alsql.cli import main
    from alsql.cli.common import set_database
    from alsql.errors import AlsqlError

    make_tone(tmp_path / "media" / "a.wav", seconds=2)
    for kw, name in (({"segment": 0.01}, "--segment"), ({"segment": 1.0, "stride": 0.05}, "--stride")):
        with pytest.raises(AlsqlError, match=f"{name} .*expected at least 0.1 s"):
            ingest(engine, str(tmp_path / "media"), **kw)
    url = engine.url.render_as_string(hide_password=False)
    try:
        for args, name in ((["--segment", "10ms"], "--segment '10ms'"), (["--stride", "50ms"], "--stride '50ms'")):
            with pytest.raises(SystemExit) as exit_info:
                main(["--db", url, "ingest", str(tmp_path / "media"), *args])
            out = capsys.readouterr()
            assert exit_info.value.code == 2, out
            assert f"{name}: expected at least 0.1 s (100 ms)" in out.out + out.err
    finally:
        set_database("sqlite:///alsql.db")
    assert _sources(engine) == {}  # nothing read or written


def test_items_per_file_are_capped_and_written_in_batches(engine, tmp_path, monkeypatch):
    from alsql.loaders import ingest_media

    root = tmp_path / "media"
    _long_wav(root / "night.wav", hours=12)
    _long_wav(root / "hour.wav", hours=1)
    make_tone(root / "blip.wav", seconds=0.05)
    calls: list[int] = []
    real = ingest_media._insert_ignore

    def spy(conn, table, rows, key):
        if table is items:
            calls.append(len(rows))
        return real(conn, table, rows, key)

    monkeypatch.setattr(ingest_media, "_insert_ignore", spy)
    report = ingest(engine, str(root), segment=0.2)
    src = _sources(engine)
    assert src["night.wav"].status == "refused"
    assert src["night.wav"].error == ("43200 s in segments of 0.2 s every 0.2 s makes more than 200,000 items, "
                                      "the limit per file (raise --segment or --stride)")
    assert src["blip.wav"].status == "refused"
    assert src["blip.wav"].error == "0.05 s long: shorter than half a segment of 0.2 s, no item (lower --segment)"
    assert src["hour.wav"].status == "ok" and report.new == 18_000
    assert sum(calls) == 18_000 and max(calls) <= ingest_media.ITEM_BATCH < 18_000
    with engine.connect() as conn:
        n = conn.execute(select(items.c.item_id).where(items.c.source_id == src["hour.wav"].source_id)).all()
    assert len(n) == 18_000
