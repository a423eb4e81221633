"""Ingest: nested folders, duplicates, corrupt files, attributes, concurrent runs."""

from __future__ import annotations

import multiprocessing as mp
import shutil

import pytest
from PIL import Image
from sqlalchemy import func, select

from alsql.db import make_engine
from alsql.errors import AlsqlError
from alsql.loaders.ingest import ingest
from alsql.schema import items


def _png(path, value, size=(6, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, color=value).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    _png(root / "cam-01" / "2024" / "a.png", 10)
    _png(root / "cam-01" / "b.png", 20, size=(16, 9))
    _png(root / "cam-02" / "deep" / "er" / "c.png", 30)
    Image.new("RGB", (5, 5), "red").save(root / "cam-02" / "d.jpg")
    shutil.copy(root / "cam-01" / "b.png", root / "cam-02" / "b-copy.png")  # same bytes
    (root / "cam-03").mkdir()
    (root / "cam-03" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = (root / "cam-01" / "b.png").read_bytes()
    (root / "cam-03" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not an image")
    return root


def test_ingest_nested_duplicates_and_corrupt(engine, folder):
    report = ingest(engine, str(folder), entity_regex=r"(cam-\d+)")
    assert (report.new, report.present, report.corrupt) == (6, 1, 2)
    assert str(report) == "6 new, 1 already present, 2 corrupt"
    with engine.connect() as conn:
        rows = {r.uri.rsplit("/data/", 1)[1]: r for r in conn.execute(select(items))}
    assert set(rows) == {
        "cam-01/2024/a.png", "cam-01/b.png", "cam-02/deep/er/c.png", "cam-02/d.jpg",
        "cam-03/broken.png", "cam-03/truncated.png",
    }
    b = rows["cam-01/b.png"]
    assert (b.width, b.height, b.media_type, b.status, b.entity) == (16, 9, "image/png", "ok", "cam-01")
    assert rows["cam-02/d.jpg"].media_type == "image/jpeg"
    assert rows["cam-03/broken.png"].status == "corrupt" and rows["cam-03/broken.png"].error
    assert rows["cam-03/truncated.png"].status == "corrupt"
    assert len({r.sha256 for r in rows.values()}) == 6

    again = ingest(engine, str(folder))
    assert (again.new, again.present, again.corrupt) == (0, 7, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(items)).scalar_one() == 6


def test_attributes_csv(engine, folder, tmp_path):
    csv_path = tmp_path / "attrs.csv"
    csv_path.write_text(
        "path,entity,captured_at,latitude,longitude,weather\n"
        "cam-01/b.png,intersection-7,2024-03-01T12:30:00Z,52.52,13.40,rain\n"
        "./cam-02/d.jpg,,2024-03-02 08:00:00,,,\n"
    )
    ingest(engine, str(folder), entity_regex=r"(cam-\d+)", attributes_csv=csv_path)
    with engine.connect() as conn:
        rows = {r.uri.rsplit("/data/", 1)[1]: r for r in conn.execute(select(items))}
    b = rows["cam-01/b.png"]
    assert b.entity == "intersection-7"  # the CSV wins over the regex
    assert (b.latitude, b.longitude) == (52.52, 13.40)
    assert b.attributes == {"weather": "rain"}
    assert b.captured_at.year == 2024 and b.captured_at.hour == 12
    d = rows["cam-02/d.jpg"]
    assert d.entity == "cam-02" and d.attributes is None and d.captured_at.day == 2


@pytest.mark.sqlite
def test_bad_attributes_write_nothing(sqlite_url, folder, tmp_path):
    engine = make_engine(sqlite_url)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,latitude\ncam-01/b.png,123.0\n")
    with pytest.raises(AlsqlError, match=r"bad.csv row 2: latitude '123.0' is outside \[-90, 90\]"):
        ingest(engine, str(folder), attributes_csv=bad)
    nopath = tmp_path / "nopath.csv"
    nopath.write_text("file,entity\nx,y\n")
    with pytest.raises(AlsqlError, match="expected a 'path' column"):
        ingest(engine, str(folder), attributes_csv=nopath)
    with pytest.raises(AlsqlError, match="not a valid regular expression"):
        ingest(engine, str(folder), entity_regex="(unclosed")
    with pytest.raises(AlsqlError, match="does not exist"):
        ingest(engine, str(tmp_path / "nowhere"))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(items)).scalar_one() == 0


def _ingest_worker(url, folder, queue):
    engine = make_engine(url)
    report = ingest(engine, folder, batch_size=7)
    queue.put((report.new, report.present, report.corrupt))


def test_two_concurrent_ingests_leave_no_duplicate(db_url, tmp_path):
    root = tmp_path / "many"
    for i in range(120):
        _png(root / f"d{i % 5}" / f"{i:03d}.png", i)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ingest_worker, args=(db_url, str(root), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(r[0] for r in results) == 120  # every file added exactly once between them
    assert all(r[0] + r[1] == 120 for r in results)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(items)).scalar_one() == 120
        assert conn.execute(select(func.count(items.c.sha256.distinct()))).scalar_one() == 120
    engine.dispose()
