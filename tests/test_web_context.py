"""A segment in its context (SQLite and PostgreSQL): the source's name, the segment's time
range within its file, its neighbours by start time (the current one marked), a frame of a
video segment as a thumbnail (seeking to the segment's middle), and the thumbnail route's
confinement (a link or a FIFO swapped in after ingest is refused, as the image route does)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select, update

from alsql.db import write_transaction
from alsql.loaders.ingest import ingest
from alsql.schema import items
from tests.media_support import brightness, make_tone, make_video
from tests.web_support import users


@pytest.fixture
def ctx_app(db_url, engine, tmp_path):
    from alsql.web import create_app

    root = tmp_path / "media"
    make_video(root / "cam-012.mp4", seconds=10, fps=10, size=32)   # five 2-s segments
    make_tone(root / "pump.wav", seconds=3, sr=16000)                # three 1-s clips
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "still.png")
    (tmp_path / "other.mp4").write_bytes((root / "cam-012.mp4").read_bytes())
    ingest(engine, str(root))
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.item_id, items.c.uri, items.c.start_s).order_by(items.c.item_id)).all()
    ids = {"video": [r.item_id for r in rows if "cam-012" in r.uri],
           "audio": [r.item_id for r in rows if "pump" in r.uri],
           "image": [r.item_id for r in rows if "still" in r.uri]}
    assert (len(ids["video"]), len(ids["audio"]), len(ids["image"])) == (5, 3, 1), rows
    app = create_app(db_url, "context-secret")
    headers = {"Authorization": f"Bearer {users(engine)['annotator']}"}
    with TestClient(app) as client:
        yield {"client": client, "h": headers, "ids": ids, "root": root, "other": tmp_path / "other.mp4"}
    app.state.engine.dispose()


def test_context_of_a_video_segment(ctx_app):
    c, h, vid = ctx_app["client"], ctx_app["h"], ctx_app["ids"]["video"]
    d = c.get(f"/api/items/{vid[2]}/context", headers=h).json()
    assert d["kind"] == "video" and d["source"]["name"] == "cam-012.mp4"
    assert (d["start"], d["end"]) == (4.0, 6.0) and d["source"]["duration"] == pytest.approx(10.0, abs=0.2)
    assert d["frame"] == pytest.approx(0.1)   # one frame at the stream's 10 fps
    assert "/" not in d["source"]["name"] and "uri" not in d["source"]  # the name, never the server's path
    ns = d["neighbours"]
    assert [n["item_id"] for n in ns] == vid                   # 2 before, itself, 2 after, by start time
    assert [(n["start"], n["end"]) for n in ns] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert [n["current"] for n in ns] == [False, False, True, False, False]
    assert all(n["thumbnail"] == f"/api/items/{n['item_id']}/thumbnail.jpg" for n in ns)
    one = c.get(f"/api/items/{vid[0]}/context?n=1", headers=h).json()["neighbours"]
    assert [(n["item_id"], n["current"]) for n in one] == [(vid[0], True), (vid[1], False)]
    last = c.get(f"/api/items/{vid[4]}/context?n=2", headers=h).json()["neighbours"]
    assert [n["item_id"] for n in last] == vid[2:]


def test_context_of_a_sound_clip_and_an_image(ctx_app, engine):
    c, h, aud = ctx_app["client"], ctx_app["h"], ctx_app["ids"]["audio"]
    with write_transaction(engine) as conn:
        conn.execute(update(items).where(items.c.item_id == aud[0]).values(status="corrupt"))
    d = c.get(f"/api/items/{aud[1]}/context", headers=h).json()
    assert d["kind"] == "audio" and d["source"]["name"] == "pump.wav" and (d["start"], d["end"]) == (1.0, 2.0)
    assert d["spectrogram"] == {"scale": "mel", "fmin": 0.0, "fmax": 8000.0, "bands": 64}
    ns = d["neighbours"]
    assert [(n["item_id"], n["current"]) for n in ns] == [(aud[0], False), (aud[1], True), (aud[2], False)]
    assert ns[0]["status"] == "corrupt" and ns[0]["thumbnail"] is None   # nothing asked of a corrupt clip
    assert ns[2]["thumbnail"] == f"/api/items/{aud[2]}/spectrogram.png"
    img = c.get(f"/api/items/{ctx_app['ids']['image'][0]}/context", headers=h).json()
    assert img["kind"] == "image" and img["source"] is None and img["neighbours"] == []


def test_context_bad_requests(ctx_app):
    c, h, vid = ctx_app["client"], ctx_app["h"], ctx_app["ids"]["video"]
    assert c.get(f"/api/items/{vid[0]}/context").status_code == 401
    assert c.get(f"/api/items/{vid[0]}/thumbnail.jpg").status_code == 401
    r = c.get("/api/items/999999/context", headers=h)
    assert r.status_code == 404 and "999999" in r.json()["detail"]
    assert c.get(f"/api/items/{vid[0]}/context?n=11", headers=h).status_code == 422
    assert c.get(f"/api/items/{vid[0]}/thumbnail.jpg?width=5000", headers=h).status_code == 422
    for other in (ctx_app["ids"]["audio"][0], ctx_app["ids"]["image"][0]):
        r = c.get(f"/api/items/{other}/thumbnail.jpg", headers=h)
        assert r.status_code == 404 and "not a video segment" in r.json()["detail"]


def _grey(body: bytes) -> tuple[tuple[int, int], float]:
    img = Image.open(io.BytesIO(body))
    assert img.format == "JPEG"
    return img.size, float(np.asarray(img.convert("L"), dtype=np.float32).mean())


def test_thumbnail_is_the_frame_at_the_segments_middle(ctx_app, engine):
    c, h, vid = ctx_app["client"], ctx_app["h"], ctx_app["ids"]["video"]
    for k, item in enumerate(vid):
        r = c.get(f"/api/items/{item}/thumbnail.jpg?width=48", headers=h)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        size, grey = _grey(r.content)
        middle = 10 * (2 * k + 1)            # frame shown at 1, 3, 5, 7, 9 s at 10 fps
        assert size == (48, 48) and abs(grey - brightness(middle, 100)) <= 4, (k, grey)
    with write_transaction(engine) as conn:
        conn.execute(update(items).where(items.c.item_id == vid[1]).values(status="corrupt"))
    assert c.get(f"/api/items/{vid[1]}/thumbnail.jpg", headers=h).status_code == 404


def test_thumbnail_refuses_a_link_or_a_fifo_swapped_in(ctx_app):
    c, h, vid, root = ctx_app["client"], ctx_app["h"], ctx_app["ids"]["video"], ctx_app["root"]
    url = f"/api/items/{vid[0]}/thumbnail.jpg"
    assert c.get(url, headers=h).status_code == 200
    (root / "cam-012.mp4").unlink()
    os.symlink(ctx_app["other"], root / "cam-012.mp4")   # a playable video, but through a link
    r = c.get(url, headers=h)
    assert r.status_code == 404 and "symbolic link" in r.json()["detail"]
    (root / "cam-012.mp4").unlink()
    os.mkfifo(root / "cam-012.mp4")
    r = c.get(url, headers=h)                             # must not block on the FIFO
    assert r.status_code == 404 and "not a regular file" in r.json()["detail"]
