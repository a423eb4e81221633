"""``alsql select --show N`` prints each pick's whole URI, a segment's ``#t=start,end`` included:
tab-separated lines when the output is not a terminal, a table whose URI column folds (never
cut short) on a narrow terminal."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import insert, select

from alsql.db import make_engine, write_transaction
from alsql.schema import items, round_items

pytestmark = pytest.mark.sqlite

FOLDER = "file:///srv/media/cameras/site-north-entrance/cam-012/2026-11-02/cam-012_2026-11-02T09-00-00.mp4"


def _segments(url: str, n: int = 8) -> dict[int, str]:
    from alsql.catalog import create_project

    engine = make_engine(url)
    rows = [{"uri": f"{FOLDER}#t={10 * k},{10 * k + 2.5}", "sha256": f"{k + 7:064x}", "media_type": "video/mp4",
             "status": "ok", "start_s": 10.0 * k, "end_s": 10.0 * k + 2.5} for k in range(n)]
    with write_transaction(engine) as conn:
        create_project(conn, "cams", ["car", "truck"])
        ids = conn.execute(insert(items).returning(items.c.item_id, items.c.uri), rows).all()
    engine.dispose()
    return dict(ids)


def _picked(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        uris = conn.execute(select(items.c.uri).join(round_items, round_items.c.item_id == items.c.item_id)
                            .order_by(round_items.c.rank)).scalars().all()
    engine.dispose()
    return uris


def test_select_prints_whole_uris_with_their_time_fragment_in_a_pipe(sqlite_url):
    from typer.testing import CliRunner

    from alsql.cli import app
    from alsql.cli.common import set_database

    uris = _segments(sqlite_url)
    result = CliRunner().invoke(app, ["--db", sqlite_url, "select", "--project", "cams", "--strategy", "random",
                                      "--budget", "5", "--seed", "3", "--show", "4"])
    set_database(sqlite_url)
    assert result.exit_code == 0, result.output
    picked = _picked(sqlite_url)
    assert len(picked) == 5 and set(picked) <= set(uris.values())
    lines = result.output.splitlines()
    assert lines[1].split("\t") == ["rank", "item", "score", "uri"]
    shown = [line.split("\t") for line in lines[2:]]
    assert [s[3] for s in shown] == picked[:4]  # whole, one per line, #t=start,end included
    assert all("#t=" in s[3] and len(s[3]) > 100 for s in shown)


def test_select_on_a_narrow_terminal_folds_the_uri_rather_than_cutting_it(sqlite_url, monkeypatch):
    from rich.console import Console
    from typer.testing import CliRunner

    import alsql.cli.select as select_cli
    from alsql.cli import app
    from alsql.cli.common import set_database

    _segments(sqlite_url)
    out = io.StringIO()
    monkeypatch.setattr(select_cli, "console", Console(file=out, force_terminal=True, width=72, color_system=None))
    result = CliRunner().invoke(app, ["--db", sqlite_url, "select", "--project", "cams", "--strategy", "random",
                                      "--budget", "3", "--seed", "1"])
    set_database(sqlite_url)
    assert result.exit_code == 0, result.output
    text = out.getvalue()
    assert "…" not in text
    rows: list[str] = []
    for line in text.splitlines():  # rows of the table: rank │ item │ score │ uri (the uri folded over lines)
        cells = [c.strip() for c in line.split("│")]
        if len(cells) != 6 or cells[4] in ("", "uri"):
            continue
        if cells[1]:
            rows.append(cells[4])
        elif rows:
            rows[-1] += cells[4]
    assert rows == _picked(sqlite_url)
