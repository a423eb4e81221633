"""A labels file names a video or sound segment by its path (relative to --root) or uri with
the segment's media fragment (``cam-101/2026-11-02.wav#t=2,4``). On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from alsql.errors import AlsqlError
from alsql.loaders.ingest import ingest
from alsql.loaders.labels import import_labels
from alsql.schema import annotations, items
from tests.media_support import make_tone


@pytest.fixture
def segments(engine, project, tmp_path):
    root = tmp_path / "recordings"
    make_tone(root / "cam-101" / "2026-11-02.wav", seconds=6.0)
    report = ingest(engine, str(root), segment=2.0, stride=2.0)
    assert report.new == 3  # one item per segment
    with engine.connect() as conn:
        rows = dict(conn.execute(select(items.c.uri, items.c.item_id).where(items.c.uri.like("%#t=%"))).all())
    assert len(rows) == 3
    return root, rows


def _labels(engine):
    with engine.connect() as conn:
        return dict(conn.execute(select(annotations.c.item_id, annotations.c.class_id)).all())


def test_a_segment_is_named_by_path_with_its_fragment(engine, segments, tmp_path):
    root, by_uri = segments
    uri = {u.rsplit("#", 1)[1]: i for u, i in by_uri.items()}
    assert set(uri) == {"t=0,2", "t=2,4", "t=4,6"}
    f = tmp_path / "labels.csv"
    # the fragment's comma makes the cell quoted, as a spreadsheet or csv.writer writes it
    f.write_text('path,label\n"cam-101/2026-11-02.wav#t=2,4",one\n"cam-101/2026-11-02.wav#t=4.0,6.000",two\n')
    report = import_labels(engine, f, "digits", root=root)
    assert report.written == 2
    assert _labels(engine) == {uri["t=2,4"]: 1, uri["t=4,6"]: 2}
    # The absolute uri works too, its seconds written either way.
    source = next(iter(by_uri)).rsplit("#", 1)[0]
    g = tmp_path / "by_uri.csv"
    g.write_text(f'uri,label\n"{source}#t=0.0,2",three\n')
    assert import_labels(engine, g, "digits").written == 1
    assert _labels(engine)[uri["t=0,2"]] == 3


def test_bad_or_unknown_fragments_are_row_errors(engine, segments, tmp_path):
    root, _ = segments
    f = tmp_path / "bad.csv"
    f.write_text("path,label\n"
                 '"cam-101/2026-11-02.wav#t=4,2",one\n'
                 "cam-101/2026-11-02.wav#t=3,one\n"
                 '"cam-101/2026-11-02.wav#t=1,3",one\n'
                 "cam-101/2026-11-02.wav,one\n")
    with pytest.raises(AlsqlError) as err:
        import_labels(engine, f, "digits", root=root, dry_run=True)
    msg = str(err.value)
    assert "4 bad row(s), nothing was written" in msg
    assert ("row 2: path 'cam-101/2026-11-02.wav#t=4,2': expected a segment's media fragment #t=START,END in "
            "seconds, END after START") in msg
    assert "row 3: path 'cam-101/2026-11-02.wav#t=3': expected a segment's media fragment" in msg
    assert "row 4: path 'cam-101/2026-11-02.wav#t=1,3' is not an item in the database" in msg
    assert "row 5: path 'cam-101/2026-11-02.wav' is not an item in the database" in msg
    assert _labels(engine) == {}
    unquoted = tmp_path / "unquoted.csv"
    unquoted.write_text("path,label\ncam-101/2026-11-02.wav#t=2,4,one\n")
    with pytest.raises(AlsqlError, match='row 2: 3 cells under 2 columns; quote a path that holds a comma, '
                                         'as in "cam-1.mp4#t=10,12"'):
        import_labels(engine, unquoted, "digits", root=root)


def test_a_hash_in_an_image_name_is_no_fragment(engine, project, tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    Image.new("L", (6, 6), 9).save(root / "shot#t=1.png")
    assert ingest(engine, str(root)).new == 1
    f = tmp_path / "labels.csv"
    f.write_text("path,label\nshot#t=1.png,four\n")
    assert import_labels(engine, f, "digits", root=root).written == 1
