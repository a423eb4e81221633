"""Label import: validated whole, refused with row numbers; export round-trips."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from alsql.errors import AlsqlError
from alsql.loaders.labels import export_labels, import_labels
from alsql.schema import annotations, current_labels, items
from tests.conftest import add_items


def _uris(engine, ids):
    with engine.connect() as conn:
        return dict(conn.execute(select(items.c.item_id, items.c.uri).where(items.c.item_id.in_(ids))).all())


def _count(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(annotations)).scalar_one()


def test_import_by_id_and_uri_then_export(engine, project, tmp_path):
    ids = add_items(engine, 4)
    uris = _uris(engine, ids)
    f = tmp_path / "labels.csv"
    f.write_text(
        "item_id,label,annotator,created_at\n"
        f"{ids[0]},zero,ann,2024-01-01T00:00:00Z\n"
        f"{ids[1]},three,,\n"
    )
    report = import_labels(engine, f, "digits")
    assert (report.rows, report.written) == (2, 2)
    g = tmp_path / "by_uri.csv"
    # the same annotator corrects ids[0]: their latest label is their one vote (docs/quality.md)
    g.write_text(f"uri,label,annotator\n{uris[ids[2]]},four,\n{uris[ids[0]]},one,ann\n")
    import_labels(engine, g, project.project_id)
    with engine.connect() as conn:
        cur = dict(conn.execute(select(current_labels.c.item_id, current_labels.c.class_id)).all())
    assert cur == {ids[0]: 1, ids[1]: 3, ids[2]: 4}  # the correction of ids[0] wins
    assert _count(engine) == 4  # nothing overwritten: history kept

    out = io.StringIO()
    assert export_labels(engine, "digits", "jsonl", out) == 3
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["item_id"], r["label"]) for r in rows] == [(ids[0], "one"), (ids[1], "three"), (ids[2], "four")]
    out = io.StringIO()
    export_labels(engine, "digits", "csv", out)
    assert out.getvalue().splitlines()[0] == "item_id,uri,label,annotator,created_at,source"
    assert len(out.getvalue().splitlines()) == 4


def test_bad_rows_are_refused_and_nothing_is_written(engine, project, tmp_path):
    ids = add_items(engine, 2)
    f = tmp_path / "bad.csv"
    f.write_text(
        "item_id,label\n"
        f"{ids[0]},zero\n"
        f"{ids[1]},zebra\n"
        "999999,one\n"
        "abc,two\n"
    )
    with pytest.raises(AlsqlError) as err:
        import_labels(engine, f, "digits")
    msg = str(err.value)
    assert "3 bad row(s), nothing was written" in msg
    assert "row 3: label 'zebra' is not a class of project 'digits' (classes: zero, one, two, three, four)" in msg
    assert "row 4: item_id 999999 is not an item in the database" in msg
    assert "row 5: item_id 'abc' is not an integer" in msg
    assert _count(engine) == 0


def test_dry_run_paths_and_headers(engine, project, tmp_path):
    from alsql.stores import path_to_uri
    from alsql.schema import items as items_t
    from alsql.db import write_transaction
    from sqlalchemy import insert

    img = tmp_path / "imgs" / "x.png"
    img.parent.mkdir()
    img.write_bytes(b"")
    with write_transaction(engine) as conn:
        conn.execute(insert(items_t).values(uri=path_to_uri(img), sha256="ab" * 32))
    f = tmp_path / "by_path.csv"
    f.write_text("path,label\nimgs/x.png,two\n")
    report = import_labels(engine, f, "digits", dry_run=True, root=tmp_path)
    assert report.rows == 1 and report.written == 0 and report.per_class == {"two": 1}
    assert _count(engine) == 0
    import_labels(engine, f, "digits", root=tmp_path)
    assert _count(engine) == 1

    h = tmp_path / "noheader.csv"
    h.write_text("name,class\nx,y\n")
    with pytest.raises(AlsqlError, match="expected columns 'label' and one of 'item_id', 'uri', 'path'"):
        import_labels(engine, h, "digits")
    with pytest.raises(AlsqlError, match="project 'nope' does not exist; known projects: digits"):
        import_labels(engine, f, "nope")
    with pytest.raises(AlsqlError, match="expected csv or jsonl"):
        export_labels(engine, "digits", "xml", io.StringIO())
