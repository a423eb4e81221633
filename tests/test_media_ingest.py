"""Ingest of video and sound files: segments tile each file, captured_at, dedup, corrupt files."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from alsql.errors import AlsqlError
from alsql.loaders.ingest import ingest
from alsql.media.kinds import fragment_uri, parse_fragment, parse_seconds, tile
from alsql.schema import items, sources
from tests.media_support import make_tone, make_video, truncate


def test_tile_covers_the_file_and_keeps_half_pieces():
    assert tile(6.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert tile(7.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 7.0)]  # 1 s = half: kept
    assert tile(6.9, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]  # 0.9 s: dropped
    assert tile(5.0, 2.0, 1.0)[:3] == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]
    assert tile(0.4, 1.0) == []
    assert parse_seconds("2s") == 2.0 and parse_seconds("500ms") == 0.5 and parse_seconds("1.5") == 1.5
    with pytest.raises(AlsqlError, match="expected a duration"):
        parse_seconds("two")
    assert parse_fragment(fragment_uri("az://c/cam/a.mp4", 10, 12.5)) == ("az://c/cam/a.mp4", 10.0, 12.5)
    assert parse_fragment("file:///x.png") == ("file:///x.png", None, None)


def _rows(engine, table, order):
    with engine.connect() as conn:
        return conn.execute(select(table).order_by(order)).mappings().all()


def test_segments_tile_each_file_with_captured_at(engine, tmp_path):
    make_video(tmp_path / "cam-1" / "a.mp4", seconds=7, fps=10, creation_time="2024-05-01T08:00:00.000000Z")
    make_tone(tmp_path / "mics" / "m.wav", seconds=3.5, sr=8000)
    with (tmp_path / "attrs.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "entity", "start_time", "site"])
        w.writerow(["mics/m.wav", "mic-7", "2024-06-01T12:00:00Z", "north"])
    report = ingest(engine, str(tmp_path), entity_regex=r"(cam-\d+)", attributes_csv=tmp_path / "attrs.csv")
    assert report.new == 4 + 4 and report.corrupt == 0
    srcs = _rows(engine, sources, sources.c.uri)
    assert [s["status"] for s in srcs] == ["ok", "ok"]
    video = next(s for s in srcs if s["uri"].endswith("a.mp4"))
    audio = next(s for s in srcs if s["uri"].endswith("m.wav"))
    assert video["media_type"] == "video/mp4" and video["rate"] == 10 and video["width"] == 32
    assert abs(video["duration"] - 7.0) < 0.01 and len(video["sha256"]) == 64
    assert audio["rate"] == 8000 and audio["channels"] == 1 and abs(audio["duration"] - 3.5) < 1e-6

    rows = _rows(engine, items, items.c.item_id)
    vid = [r for r in rows if r["source_id"] == video["source_id"]]
    aud = [r for r in rows if r["source_id"] == audio["source_id"]]
    # Segments tile the file exactly: contiguous, from 0 to the end (the 1 s tail is half a segment).
    assert [(r["start_s"], r["end_s"]) for r in vid] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert [(r["start_s"], r["end_s"]) for r in aud] == [(0, 1), (1, 2), (2, 3), (3, 3.5)]
    assert vid[1]["uri"] == video["uri"] + "#t=2,4" and aud[3]["uri"] == audio["uri"] + "#t=3,3.5"
    v0 = datetime(2024, 5, 1, 8, tzinfo=timezone.utc)
    a0 = datetime(2024, 6, 1, 12, tzinfo=timezone.utc)
    for r in vid:
        assert r["captured_at"].replace(tzinfo=timezone.utc) == v0 + timedelta(seconds=r["start_s"])
        assert r["entity"] == "cam-1" and r["rate"] == 10 and r["sha256"] is None and r["status"] == "ok"
    for r in aud:
        assert r["captured_at"].replace(tzinfo=timezone.utc) == a0 + timedelta(seconds=r["start_s"])
        assert r["entity"] == "mic-7" and r["attributes"] == {"site": "north"}
        assert r["duration"] == r["end_s"] - r["start_s"]

    again = ingest(engine, str(tmp_path), entity_regex=r"(cam-\d+)", attributes_csv=tmp_path / "attrs.csv")
    assert again.new == 0 and again.present == 2
    # The same file under another name is a duplicate by sha256: no new source, no items.
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "b.mp4").write_bytes((tmp_path / "cam-1" / "a.mp4").read_bytes())
    third = ingest(engine, str(tmp_path))
    assert third.new == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sources)).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(items)).scalar_one() == 8


def test_segment_and_stride_options(engine, tmp_path):
    make_tone(tmp_path / "a.flac", seconds=4.0, sr=8000)
    report = ingest(engine, str(tmp_path), segment=parse_seconds("2s"), stride=parse_seconds("1s"))
    assert report.new == 3
    spans = [(r["start_s"], r["end_s"]) for r in _rows(engine, items, items.c.item_id)]
    assert spans == [(0, 2), (1, 3), (2, 4)]


def test_broken_files_are_corrupt_and_ingest_goes_on(engine, tmp_path):
    truncate(make_video(tmp_path / "trunc.mp4", seconds=4), 0.5)
    truncate(make_video(tmp_path / "trunc-indexed.mp4", seconds=20, pattern="left", faststart=True), 0.5)
    (tmp_path / "empty.wav").write_bytes(b"")
    import numpy as np
    import soundfile as sf

    sf.write(str(tmp_path / "no-frames.wav"), np.zeros(0, np.float32), 8000)  # a header, no samples
    make_tone(tmp_path / "only-audio.mp4", seconds=2)  # an mp4 with no video stream
    (tmp_path / "noise.mkv").write_bytes(b"not a video at all" * 50)
    make_tone(tmp_path / "good.ogg", seconds=2)
    report = ingest(engine, str(tmp_path))
    assert report.corrupt == 6 and report.new == 2
    srcs = {s["uri"].rsplit("/", 1)[1]: s for s in _rows(engine, sources, sources.c.uri)}
    assert srcs["good.ogg"]["status"] == "ok"
    for name in ("trunc.mp4", "trunc-indexed.mp4", "empty.wav", "no-frames.wav", "only-audio.mp4", "noise.mkv"):
        assert srcs[name]["status"] == "corrupt", name
        assert srcs[name]["error"], name
    assert "no video stream" in srcs["only-audio.mp4"]["error"]
    assert "no audio samples" in srcs["no-frames.wav"]["error"]
    assert "truncated" in srcs["trunc-indexed.mp4"]["error"]
    with engine.connect() as conn:
        owners = set(conn.execute(select(items.c.source_id)).scalars())
    assert owners == {srcs["good.ogg"]["source_id"]}
    assert ingest(engine, str(tmp_path)).new == 0  # read again, still corrupt: nothing added


def test_limits_refuse_with_a_clear_status(engine, tmp_path, monkeypatch):
    from alsql.loaders import ingest_media

    long = make_tone(tmp_path / "long.flac", seconds=5, sr=8000)  # a pure tone: small
    big = make_tone(tmp_path / "big.wav", seconds=3, sr=8000, noise=0.5)
    fine = make_tone(tmp_path / "fine.flac", seconds=1, sr=8000)
    assert max(long.stat().st_size, fine.stat().st_size) < big.stat().st_size
    make_video(tmp_path / "wide.mp4", seconds=2, size=32)
    monkeypatch.setattr(ingest_media, "MAX_FRAME_PIXELS", 32 * 32 - 1)
    monkeypatch.setattr(ingest_media, "MAX_DURATION_S", 4.0)
    monkeypatch.setattr(ingest_media, "MAX_BYTES", big.stat().st_size - 1)
    from alsql.loaders import ingest as image_ingest

    if hasattr(image_ingest, "DEFAULT_MAX_BYTES"):  # the per-kind caps of --max-bytes
        monkeypatch.setitem(image_ingest.DEFAULT_MAX_BYTES, "audio", big.stat().st_size - 1)
    report = ingest(engine, str(tmp_path))
    assert report.corrupt == 3 and report.new == 1
    srcs = {s["uri"].rsplit("/", 1)[1]: s for s in _rows(engine, sources, sources.c.uri)}
    assert srcs["long.flac"]["status"] == "refused" and "over the limit of 4 s" in srcs["long.flac"]["error"]
    assert srcs["big.wav"]["status"] == "refused" and "bytes, over the limit of" in srcs["big.wav"]["error"]
    assert srcs["fine.flac"]["status"] == "ok"
    assert srcs["wide.mp4"]["status"] == "refused" and "32x32 pixels, over the limit" in srcs["wide.mp4"]["error"]


@pytest.mark.sqlite
def test_cli_segment_and_stride(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database
    from alsql.db import make_engine

    monkeypatch.chdir(tmp_path)
    make_tone(tmp_path / "media" / "a.wav", seconds=3, sr=8000)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["--db", url, "db", "upgrade"]).exit_code == 0
        out = runner.invoke(app, ["--db", url, "ingest", str(tmp_path / "media"), "--segment", "1500ms"])
        assert out.exit_code == 0, out.output
        assert "2 new" in out.output
        bad = runner.invoke(app, ["--db", url, "ingest", str(tmp_path / "media"), "--stride", "soon"])
        assert bad.exit_code != 0 and "--stride 'soon'" in (bad.output + str(bad.exception))
    finally:
        set_database("sqlite:///alsql.db")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            spans = conn.execute(select(items.c.start_s, items.c.end_s).order_by(items.c.start_s)).all()
    finally:
        engine.dispose()
    assert [tuple(s) for s in spans] == [(0, 1.5), (1.5, 3)]


def test_a_corrupt_file_that_is_fixed_is_repaired_on_the_next_ingest(engine, tmp_path):
    video = make_video(tmp_path / "cam.mp4", seconds=4, fps=10)
    whole = video.read_bytes()
    video.write_bytes(whole[: len(whole) // 2])  # an upload still in progress
    first = ingest(engine, str(tmp_path))
    assert first.corrupt == 1 and first.new == 0
    assert ingest(engine, str(tmp_path)).new == 0  # still broken: nothing added
    video.write_bytes(whole)
    third = ingest(engine, str(tmp_path))
    assert third.new == 2
    srcs = _rows(engine, sources, sources.c.source_id)
    assert len(srcs) == 1 and srcs[0]["status"] == "ok" and srcs[0]["error"] is None
    assert abs(srcs[0]["duration"] - 4.0) < 0.01
