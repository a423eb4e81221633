"""Label import row checks (also under --dry-run), paths through links and duplicates, and
CSV export that a spreadsheet cannot run as formulas. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import os

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from alsql.annotate import insert_annotations

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.ingest import ingest
from alsql.loaders.labels import export_labels, import_labels
from alsql.schema import annotations, items
from tests.conftest import add_items


def _count(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(annotations)).scalar_one()


def _refused(engine, f, dry_run, root=None):
    with pytest.raises(AlsqlError) as err:
        import_labels(engine, f, "digits", dry_run=dry_run, root=root)
    return str(err.value)


@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_ids_text_and_annotators_are_row_errors(engine, project, tmp_path, dry_run):
    ids = add_items(engine, 3)
    f = tmp_path / "bad.csv"
    f.write_text(
        "item_id,label,annotator\n"
        f"{ids[0]},zero,ann\n"
        "\u00b2,one,ann\n"  # a Unicode digit
        "99999999999999999999999,one,ann\n"
        "0,one,ann\n"
        "true,two,ann\n"
        f"{ids[1]},two,{'a' * 201}\n"
        f"{ids[2]},two,a\x00b\n",
        encoding="utf-8",
    )
    msg = _refused(engine, f, dry_run)
    assert "6 bad row(s), nothing was written" in msg
    assert "row 3: item_id '\u00b2' is not an integer" in msg
    assert "row 4: item_id 99999999999999999999999 is out of range (1 to 9223372036854775807)" in msg
    assert "row 5: item_id 0 is out of range" in msg
    assert "row 6: item_id 'true' is not an integer" in msg
    assert "row 7: annotator is 201 characters long; at most 200" in msg
    assert "row 8: contains a NUL character" in msg
    assert _count(engine) == 0
    # At the limit it goes in, on every backend.
    ok = tmp_path / "ok.csv"
    ok.write_text(f"item_id,label,annotator\n{ids[1]},two,{'a' * 200}\n")
    assert import_labels(engine, ok, "digits", dry_run=dry_run).rows == 1


def test_latin1_file_is_a_row_error(engine, project, tmp_path):
    ids = add_items(engine, 2)
    f = tmp_path / "latin1.csv"
    f.write_bytes(f"item_id,label,annotator\n{ids[0]},zero,ann\n{ids[1]},one,Jos\u00e9\n".encode("latin-1"))
    for dry_run in (True, False):
        msg = _refused(engine, f, dry_run)
        assert "row 3: is not UTF-8 text (byte 0xe9); save the file as UTF-8" in msg
    assert _count(engine) == 0


def test_conflicting_rows_for_one_item_are_reported(engine, project, tmp_path):
    ids = add_items(engine, 2)
    f = tmp_path / "conflict.csv"
    f.write_text(f"item_id,label\n{ids[0]},zero\n{ids[1]},one\n{ids[0]},zero\n{ids[0]},three\n")
    for dry_run in (True, False):
        msg = _refused(engine, f, dry_run)
        assert "1 bad row(s)" in msg
        assert (f"row 5: item {ids[0]} is also in row 2 with label 'zero', here 'three' "
                "(conflicting labels for one item in one file by one annotator: rows without an annotator "
                "are one annotator's; add an annotator column or pass --annotator)") in msg
    assert _count(engine) == 0
    with pytest.raises(AlsqlError, match="rows without an annotator are by --annotator 'kim'"):
        import_labels(engine, f, "digits", annotator="kim")
    assert _count(engine) == 0


def test_annotators_may_disagree_but_not_with_themselves(engine, project, tmp_path):
    from alsql.schema import current_labels

    ids = add_items(engine, 2)
    team = tmp_path / "team.csv"
    team.write_text("item_id,label,annotator\n"
                    f"{ids[0]},zero,ann\n{ids[0]},three,bob\n{ids[0]},zero,cy\n{ids[1]},one,ann\n"
                    f"{ids[1]},one,ann\n{ids[1]},two,\n")
    report = import_labels(engine, team, "digits", annotator="lead")
    assert (report.rows, report.written) == (6, 6)
    with engine.connect() as conn:
        got = sorted(conn.execute(select(annotations.c.item_id, annotations.c.annotator, annotations.c.class_id))
                     .all())
        assert len(conn.execute(select(current_labels)).all()) == 2
    assert got == sorted([(ids[0], "ann", 0), (ids[0], "bob", 3), (ids[0], "cy", 0), (ids[1], "ann", 1),
                          (ids[1], "ann", 1), (ids[1], "lead", 2)])
    again = tmp_path / "again.csv"
    again.write_text(f"item_id,label,annotator\n{ids[0]},zero,ann\n{ids[0]},one,bob\n{ids[0]},two,ann\n")
    msg = _refused(engine, again, True)
    assert "1 bad row(s)" in msg
    assert (f"row 4: item {ids[0]} is also in row 2 with label 'zero', here 'two' (conflicting labels for one "
            "item in one file by one annotator, 'ann': different annotators may disagree, one annotator may not)"
            ) in msg
    assert _count(engine) == 6


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (6, 6), color=value).save(path)


def test_paths_through_links_and_duplicates(engine, project, tmp_path):
    root = tmp_path / "photos"
    _png(root / "a" / "x.png", 1)
    _png(root / "real" / "y.png", 2)
    os.symlink(root / "real" / "y.png", root / "alias.png")  # a link inside the folder
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes((root / "a" / "x.png").read_bytes())  # a stray copy
    report = ingest(engine, str(root))
    assert report.new == 2 and report.duplicate_count == 1
    with engine.connect() as conn:
        kept = conn.execute(select(items.c.item_id).where(items.c.uri.like("%/a/x.png"))).scalar_one()
    by_link = tmp_path / "by_link.csv"
    by_link.write_text("path,label\nalias.png,one\nreal/y.png,one\n")
    assert import_labels(engine, by_link, "digits", root=root).written == 2
    # An item recorded under the link's own path (an older ingest) is found too.
    with write_transaction(engine) as conn:
        conn.execute(update(items).where(items.c.uri.like("%/real/y.png"))
                     .values(uri=(root / "alias.png").absolute().as_uri()))
    only_link = tmp_path / "only_link.csv"
    only_link.write_text("path,label\nalias.png,one\n")
    assert import_labels(engine, only_link, "digits", root=root, dry_run=True).rows == 1
    dup = tmp_path / "dup.csv"
    dup.write_text("path,label\nb/x.png,two\n")
    msg = _refused(engine, dup, True, root).replace("\\", "/")
    assert f"row 2: b/x.png is a duplicate of item {kept} (a/x.png); label that item" in msg


def test_csv_export_neutralises_formulas(engine, project, tmp_path):
    ids = add_items(engine, 6)
    names = ["=HYPERLINK(\"http://x\")", "+1+2", "-3", "@SUM(A1)", "\tcmd", "plain"]
    with write_transaction(engine) as conn:
        insert_annotations(conn, [
            {"project_id": project.project_id, "item_id": i, "class_id": 0, "annotator": who, "source": "import"}
            for i, who in zip(ids, names)])
    out = io.StringIO()
    assert export_labels(engine, "digits", "csv", out) == 6
    got = [r["annotator"] for r in csv.DictReader(io.StringIO(out.getvalue()))]
    assert got == ["'=HYPERLINK(\"http://x\")", "'+1+2", "'-3", "'@SUM(A1)", "'\tcmd", "plain"]
    js = io.StringIO()
    export_labels(engine, "digits", "jsonl", js)
    assert '"annotator": "=HYPERLINK' in js.getvalue()  # JSON is data, not a spreadsheet: unchanged
