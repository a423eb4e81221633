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
    assert str(report) == "6 new, 1 already present, 2 corrupt, 1 duplicate"
    assert [str(d) for d in report.duplicates] == [
        f"cam-02/b-copy.png is a duplicate of item {report.duplicates[0].kept_id} (cam-01/b.png)"
    ]
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


def test_truncated_jpeg_is_corrupt_and_a_reingest_repairs_it(engine, tmp_path):
    import numpy as np

    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    img.save(root / "photo.jpg")
    whole = (root / "photo.jpg").read_bytes()
    (root / "photo.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    first = ingest(engine, str(root))
    assert (first.new, first.corrupt) == (1, 1)
    with engine.connect() as conn:
        before = conn.execute(select(items.c.item_id, items.c.status, items.c.error)).one()
    assert before.status == "corrupt" and "truncated" in before.error
    (root / "photo.jpg").write_bytes(whole)  # the copy finished
    again = ingest(engine, str(root))
    assert (again.new, again.repaired) == (0, 1) and "1 repaired" in str(again)
    with engine.connect() as conn:
        after = conn.execute(select(items)).one()
    assert (after.item_id, after.status, after.error, after.width, after.height) == (before.item_id, "ok", None, 80, 64)
    assert after.sha256 is not None and after.media_type == "image/jpeg"
    (root / "photo.jpg").unlink()
    assert ingest(engine, str(root)).repaired == 0  # an ok item whose file is gone is left to the loaders


def test_update_reapplies_entity_and_attributes(engine, folder, tmp_path):
    ingest(engine, str(folder), entity_regex=r"cam-(\d+)")  # a regex that keeps only the digits
    with pytest.raises(AlsqlError, match="--update re-applies"):
        ingest(engine, str(folder), update=True)
    csv_path = tmp_path / "attrs.csv"
    csv_path.write_text("path,latitude,longitude,weather\ncam-01/b.png,52.5,13.4,rain\n")
    plain = ingest(engine, str(folder), entity_regex=r"(cam-\d+)", attributes_csv=csv_path)
    assert plain.updated == 0
    with engine.connect() as conn:
        assert set(conn.execute(select(items.c.entity)).scalars()) == {"01", "02", "03"}
    report = ingest(engine, str(folder), entity_regex=r"(cam-\d+)", attributes_csv=csv_path, update=True)
    assert report.updated == 6 and report.new == 0  # every item present, whatever its status
    with engine.connect() as conn:
        rows = {r.uri.rsplit("/data/", 1)[1]: r for r in conn.execute(select(items))}
    assert rows["cam-01/b.png"].entity == "cam-01" and rows["cam-01/b.png"].attributes == {"weather": "rain"}
    assert (rows["cam-01/b.png"].latitude, rows["cam-01/b.png"].longitude) == (52.5, 13.4)
    assert rows["cam-02/d.jpg"].entity == "cam-02"


@pytest.mark.sqlite
def test_cli_limits_duplicates_and_update(sqlite_url, folder, tmp_path):
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database

    (folder / "cam-01" / "big.png").write_bytes((folder / "cam-01" / "b.png").read_bytes() + b"\0" * 2000)
    for i in range(25):
        shutil.copy(folder / "cam-01" / "2024" / "a.png", folder / f"copy-{i:02d}.png")
    runner = CliRunner()
    try:
        res = runner.invoke(app, ["--db", sqlite_url, "ingest", str(folder), "--max-bytes", "image=1K",
                                  "--max-pixels", "100", "--entity-regex", r"cam-(\d+)"])
        assert res.exit_code == 0, res.output
        out = res.output
        assert "26 duplicates" in out and out.count("is a duplicate of item") == 20
        assert "... and 6 more duplicates" in out
        engine = make_engine(sqlite_url)
        with engine.connect() as conn:
            errs = dict(conn.execute(select(items.c.uri, items.c.error)).all())
        big = next(e for u, e in errs.items() if u.endswith("big.png"))
        assert big.startswith("refused: ") and "over the limit of 1,024 bytes (--max-bytes)" in big
        wide = next(e for u, e in errs.items() if u.endswith("cam-01/b.png"))
        assert wide == "too many pixels: 16 x 9 > 100"
        res = runner.invoke(app, ["--db", sqlite_url, "ingest", str(folder), "--update", "--entity-regex", r"(cam-\d+)"])
        assert res.exit_code == 0 and "updated" in res.output, res.output
        with engine.connect() as conn:
            assert "cam-01" in set(conn.execute(select(items.c.entity)).scalars())
        res = runner.invoke(app, ["--db", sqlite_url, "ingest", str(folder), "--max-bytes", "lots"])
        assert res.exit_code != 0 and "expected a positive number of bytes" in str(res.exception) + res.output
        engine.dispose()
    finally:
        set_database("sqlite:///alsql.db")
