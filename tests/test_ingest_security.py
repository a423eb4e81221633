"""Ingest under hostile input: links out of the folder, FIFOs, huge and sparse files,
decompression bombs, names that are not UTF-8; and the image route that serves the items.
On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import threading

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from alsql.loaders.ingest import ingest
from alsql.schema import items
from alsql.stores import path_to_uri, store_for
from tests.web_support import users

SECRET = b"root:x:0:0:secret outside the folder\n"


def _png(path, value=0, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, color=value).save(path)


def _rows(engine):
    with engine.connect() as conn:
        return {r.uri.rsplit("/photos/", 1)[1]: r for r in conn.execute(select(items))}


def _ingest_with_deadline(engine, folder, seconds=60, **kw):
    """Ingest in a thread; fail (instead of hanging the suite) if it blocks."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(ingest(engine, str(folder), **kw)), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "ingest blocked"
    assert out, "ingest raised"
    return out[0]


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "photos"
    _png(root / "a.png", 1)
    _png(root / "sub" / "b.png", 2)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(SECRET)
    _png(tmp_path / "outside.png", 3)
    os.symlink(outside, root / "passwd.png")  # a link out of the folder
    os.symlink(tmp_path / "outside.png", root / "looks-fine.png")  # a real image, but outside
    os.symlink("/dev/zero", root / "zero.png")
    os.symlink(root / "sub" / "b.png", root / "inside-link.png")  # inside: the target's item
    os.mkfifo(root / "fifo.png")
    with open(root / "sparse.png", "wb") as fh:
        fh.truncate(3 * 1024**3)  # 3 GB and no disk used
    return root


def test_links_out_fifos_and_huge_files_are_refused_and_the_rest_ingested(engine, hostile):
    report = _ingest_with_deadline(engine, hostile)
    rows = _rows(engine)
    assert rows["a.png"].status == "ok" and rows["sub/b.png"].status == "ok"
    for name in ("passwd.png", "looks-fine.png", "zero.png"):
        assert rows[name].status == "corrupt" and rows[name].sha256 is None
        assert rows[name].error.startswith("refused: a symbolic link to something outside"), rows[name].error
    assert rows["fifo.png"].status == "corrupt" and rows["fifo.png"].error.startswith("refused: not a regular file")
    assert rows["sparse.png"].error == (
        "refused: 3,221,225,472 bytes over the limit of 268,435,456 bytes (--max-bytes)")
    assert "inside-link.png" not in rows  # recorded under its target's uri, once
    assert (report.new, report.refused) == (7, 5)
    assert len(rows) == 7
    # A lower cap refuses the small files too; their bytes are never stored.
    again = ingest(engine, str(hostile), max_bytes=10)
    assert again.new == 0 and again.repaired == 0


def test_image_route_serves_only_ok_regular_files(db_url, engine, hostile, tmp_path):
    ingest(engine, str(hostile))
    from alsql.web import create_app

    tokens = users(engine)
    app = create_app(db_url, "test-secret")
    headers = {"Authorization": f"Bearer {tokens['annotator']}"}
    rows = _rows(engine)
    try:
        with TestClient(app) as client:
            ok = client.get(f"/api/items/{rows['a.png'].item_id}/image", headers=headers)
            assert ok.status_code == 200 and ok.content == (hostile / "a.png").read_bytes()
            assert ok.headers["content-length"] == str(len(ok.content))
            for name in ("passwd.png", "looks-fine.png", "zero.png", "fifo.png", "sparse.png"):
                r = client.get(f"/api/items/{rows[name].item_id}/image", headers=headers)
                assert r.status_code == 404 and "corrupt" in r.json()["detail"], name
                assert SECRET not in r.content
            # An ok item whose file is swapped for a link (or a FIFO) after ingest is not served.
            a = hostile / "a.png"
            a.unlink()
            os.symlink(tmp_path / "secret.txt", a)
            r = client.get(f"/api/items/{rows['a.png'].item_id}/image", headers=headers)
            assert r.status_code == 404 and SECRET not in r.content
            b = hostile / "sub" / "b.png"
            b.unlink()
            os.mkfifo(b)
            r = client.get(f"/api/items/{rows['sub/b.png'].item_id}/image", headers=headers)
            assert r.status_code == 404
    finally:
        app.state.engine.dispose()


def test_decompression_bomb_is_refused_from_the_header(engine, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # 400 MP in about 50 kB
    (root / "bomb.png").write_bytes(buf.getvalue())
    _png(root / "small.png", 5, size=(100, 100))
    report = ingest(engine, str(root))
    rows = _rows(engine)
    assert rows["bomb.png"].status == "corrupt"
    assert rows["bomb.png"].error == "too many pixels: 20000 x 20000 > 64,000,000"
    assert rows["small.png"].status == "ok" and report.refused == 1
    # The limit is configurable.
    root2 = tmp_path / "other" / "photos"
    _png(root2 / "c.png", 9, size=(100, 100))
    ingest(engine, str(root2), max_pixels=5000)
    with engine.connect() as conn:
        err = conn.execute(select(items.c.error).where(items.c.uri.like("%/other/photos/c.png"))).scalar_one()
    assert err == "too many pixels: 100 x 100 > 5,000"


def test_name_that_is_not_utf8_does_not_abort_ingest(engine, tmp_path):
    root = tmp_path / "photos"
    _png(root / "a.png", 1)
    buf = io.BytesIO()
    Image.new("L", (4, 4), 7).save(buf, format="PNG")
    with open(os.path.join(os.fsencode(root), b"\xff\xfe-odd.png"), "wb") as fh:
        fh.write(buf.getvalue())
    report = ingest(engine, str(root))
    assert report.new == 2
    rows = _rows(engine)
    odd = rows["%FF%FE-odd.png"]
    assert odd.status == "ok" and (odd.width, odd.height) == (4, 4)
    assert store_for(odd.uri).open(odd.uri) == buf.getvalue()  # the uri reads back the same file
    assert ingest(engine, str(root)).present == 2


def test_unreadable_folder_is_a_warning(engine, tmp_path, monkeypatch):
    root = tmp_path / "photos"
    _png(root / "a.png", 1)
    _png(root / "locked" / "b.png", 2)
    from alsql.loaders import confine

    real = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(confine.os, "scandir", scandir)
    report = ingest(engine, str(root))
    assert report.new == 1
    assert report.warnings == ["locked: folder cannot be read (Permission denied); skipped"]
    assert "1 warning" in str(report)


def test_local_item_uri_through_link_reads_like_labels_expect(engine, tmp_path):
    root = tmp_path / "photos"
    _png(root / "real" / "x.png", 4)
    os.symlink(root / "real" / "x.png", root / "alias.png")
    ingest(engine, str(root))
    with engine.connect() as conn:
        uris = list(conn.execute(select(items.c.uri)).scalars())
    assert uris == [path_to_uri(root / "alias.png")]  # the resolved target, once
