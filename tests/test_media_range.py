"""The source route of the labeling app: HTTP Range over video and sound files, the
playback description of a segment, and the spectrogram PNG (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import insert, update

from alsql.catalog import create_project
from alsql.db import write_transaction
from alsql.schema import items, sources
from alsql.stores import path_to_uri
from alsql.web.media import parse_range
from tests.web_support import users


def write_media(folder: Path, video_seconds: int = 4) -> dict[str, Path]:
    """A VP8 WebM (64x64, 4 fps, vehicles at a four-way junction) and a 3-s 16 kHz WAV."""
    import soundfile as sf

    from alsql.pipelines.scenarios.maintenance_data import synthesize
    from alsql.pipelines.scenarios.traffic_data import TrafficSize, _cameras, _encode_webm, draw_frames

    folder.mkdir(parents=True, exist_ok=True)
    size = TrafficSize(1, 1, video_seconds)
    cam = next(c for c in _cameras(TrafficSize(1, 1, 4), np.random.default_rng(0)) if c.kind == "four_way")
    video, sound = folder / "cam-001.webm", folder / "machine-01.wav"
    _encode_webm(video, draw_frames(cam, size, np.random.default_rng(1)), size.fps)
    sf.write(str(sound), synthesize(3, 16000, "whine", np.random.default_rng(2)), 16000, subtype="PCM_16")
    return {"video": video, "audio": sound}


def add_media_items(engine, files: dict[str, Path], project_name: str = "media",
                    classes=("normal", "abnormal")) -> dict:
    """Sources rows for the files and one item per 1-s (audio) or 2-s (video) segment."""
    import av

    def seconds(path: Path) -> float:
        with av.open(str(path)) as c:
            return round(c.duration / 1e6)

    spec = {"video": ("video/webm", 4.0, 2.0), "audio": ("audio/wav", 16000.0, 1.0)}
    out = {"sources": {}, "items": {}}
    with write_transaction(engine) as conn:
        project = create_project(conn, project_name, list(classes))
        for kind, path in files.items():
            media, rate, step = spec[kind]
            duration = float(seconds(path))
            uri = path_to_uri(path)
            sid = conn.execute(insert(sources).values(
                uri=uri, sha256=f"{kind:0>64}"[-64:], media_type=media, size_bytes=path.stat().st_size,
                duration=duration, rate=rate, status="ok").returning(sources.c.source_id)).scalar_one()
            out["sources"][kind] = sid
            rows = [{"uri": f"{uri}#t={s:g},{s + step:g}", "sha256": None, "media_type": media, "source_id": sid,
                     "start_s": s, "end_s": s + step, "rate": rate, "status": "ok"}
                    for s in np.arange(0, duration, step)]
            out["items"][kind] = list(conn.execute(
                insert(items).returning(items.c.item_id, sort_by_parameter_order=True), rows).scalars())
    out["project_id"] = project.project_id
    return out


@pytest.fixture
def served(engine, tmp_path):
    from alsql.web import create_app

    files = write_media(tmp_path / "media")
    info = add_media_items(engine, files)
    tokens = users(engine)
    client = TestClient(create_app(engine.url.render_as_string(hide_password=False), "range-secret"))
    info.update(client=client, files=files, auth={"Authorization": f"Bearer {tokens['annotator']}"})
    return info


def test_parse_range_forms():
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=95-200", 100) == (95, 99)
    assert parse_range("bytes=0-1, 10-19", 100) == (0, 19)  # several ranges: the span covering them
    for bad in ("bytes=100-", "bytes=5-2", "items=0-1", "bytes=", "bytes=a-b", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(bad, 100)


def test_range_requests_answer_the_right_bytes(served):
    c, auth, sid = served["client"], served["auth"], served["sources"]["video"]
    body = served["files"]["video"].read_bytes()
    url = f"/api/sources/{sid}/file"
    whole = c.get(url, headers=auth)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/webm"
    part = c.get(url, headers=auth | {"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == body[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(body)}"
    assert part.headers["content-length"] == "1000"
    tail = c.get(url, headers=auth | {"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == body[-50:]
    open_end = c.get(url, headers=auth | {"Range": f"bytes={len(body) - 7}-"})
    assert open_end.status_code == 206 and open_end.content == body[-7:]
    for bad in (f"bytes={len(body)}-", "bytes=9-3", "pages=1-2"):
        r = c.get(url, headers=auth | {"Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{len(body)}"
    head = c.head(url, headers=auth | {"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.headers["content-length"] == "10" and head.content == b""
    # An If-Range naming another version gets the whole file.
    stale = c.get(url, headers=auth | {"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == body


def test_source_route_is_confined_and_needs_a_login(served, engine):
    c, auth, sid = served["client"], served["auth"], served["sources"]["audio"]
    assert c.get(f"/api/sources/{sid}/file").status_code == 401
    assert c.get("/api/sources/999999/file", headers=auth).status_code == 404
    assert c.get("/api/sources/..%2f..%2fetc%2fpasswd/file", headers=auth).status_code in (404, 422)
    # Only sources of ok items are served.
    with write_transaction(engine) as conn:
        conn.execute(update(items).where(items.c.source_id == sid).values(status="corrupt"))
    assert c.get(f"/api/sources/{sid}/file", headers=auth).status_code == 404
    with write_transaction(engine) as conn:
        conn.execute(update(items).where(items.c.source_id == sid).values(status="ok"))
        conn.execute(update(sources).where(sources.c.source_id == sid).values(status="corrupt"))
    assert c.get(f"/api/sources/{sid}/file", headers=auth).status_code == 404


def test_media_description_and_spectrogram(served):
    c, auth = served["client"], served["auth"]
    v = served["items"]["video"][1]
    d = c.get(f"/api/items/{v}/media", headers=auth).json()
    assert d == {"item_id": v, "kind": "video", "start": 2.0, "end": 4.0,
                 "src": f"/api/sources/{served['sources']['video']}/file#t=2,4"}
    a = served["items"]["audio"][2]
    d = c.get(f"/api/items/{a}/media", headers=auth).json()
    assert d["kind"] == "audio" and (d["start"], d["end"]) == (2.0, 3.0) and d["spectrogram"].endswith("spectrogram.png")
    png = c.get(d["spectrogram"], headers=auth)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"), dtype=np.float32)
    assert img.shape[0] == 128 and img.shape[1] >= 64 and img.std() > 5  # a picture, not a flat fill
    # The whine (2-3.5 kHz) shows as a bright band: some row is far brighter than the median row.
    rows = img.mean(axis=1)
    assert rows.max() > np.median(rows) + 30
    assert c.get(f"/api/items/{v}/spectrogram.png", headers=auth).status_code == 404
    assert c.get("/api/items/999999/media", headers=auth).status_code == 404
