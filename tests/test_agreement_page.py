"""The progress page shows each annotator's figures and the agreement between annotators,
read from the quality marts (built on SQLite and on PostgreSQL over the simulation of
tests/agreement_data.py), and says how to build them when they are missing."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from alsql.annotate import insert_annotations
from alsql.db import make_engine, write_transaction
from alsql.web import create_app
from alsql.web.agreement import quality as read_quality
from test_agreement_marts import _rows, pg_quality, quality, sqlite_quality  # noqa: F401 (fixtures)
from tests.web_support import users


def _page(engine, project_id: int) -> str:
    tokens = users(engine) if not _has_users(engine) else {"annotator": "tok-annot-0123456789"}
    app = create_app(engine.url.render_as_string(hide_password=False), "test-secret")
    try:
        res = TestClient(app).get(f"/projects/{project_id}/progress",
                                  headers={"Authorization": f"Bearer {tokens['annotator']}"})
    finally:
        app.state.engine.dispose()
    assert res.status_code == 200, res.text
    return html.unescape(res.text)


def _has_users(engine) -> bool:
    from sqlalchemy import func, select

    from alsql.schema import users as users_table

    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(users_table)).scalar_one() > 0


def _text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _cells(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


@pytest.mark.slow
def test_progress_page_shows_annotators_alpha_and_kappas(quality):  # noqa: F811
    engine, sim, _ = quality
    birds = sim.projects["birds"]
    page = _page(engine, birds)
    perf = {r["annotator"]: r for r in _rows(quality, "annotator_performance")
            if r["project_id"] == birds and r["period"] == "all_time"}
    rows = {r[0]: r for r in _cells(page, "annotators")}
    assert set(rows) == set(perf)
    for who, r in perf.items():
        assert rows[who] == [who, str(r["labels"]), f"{r['median_seconds']:.1f}",
                             f"{100 * r['gold_accuracy']:.1f}% of {r['gold_answers']}",
                             f"{100 * r['record_agreement']:.1f}% of {r['record_answers']}"]
    agreement = [r for r in _rows(quality, "annotator_agreement") if r["project_id"] == birds]
    alpha = agreement[0]["alpha"]
    assert f"Krippendorff's alpha: {alpha:.3f} over {agreement[0]['alpha_items']} items" in _text(page)
    pairs = {r[0]: r for r in _cells(page, "pairs")}
    kappas = {f"{r['annotator_a']} · {r['annotator_b']}": r for r in agreement}
    assert set(pairs) == set(kappas) and len(pairs) == 15
    for name, r in kappas.items():
        want = f"{r['kappa']:.3f}" if r["kappa"] is not None else "no common items"
        assert pairs[name][1] == str(r["pair_items"]) and pairs[name][3] == want, (name, pairs[name])
    assert pairs["eve · fay"][1:] == ["0", "–", "no common items"]
    # One class throughout: kappa and alpha undefined, said in words.
    mono = _text(_page(engine, sim.projects["mono"]))
    assert "undefined (every label is the same class)" in mono and "undefined (one class only)" in mono
    # One annotator: no pair, and agreement with the label of record is not claimed.
    solo = _text(_page(engine, sim.projects["solo"]))
    assert "no item labeled by two annotators yet" in solo and "only rater so far" in solo


@pytest.mark.slow
def test_labels_after_the_build_are_counted(sqlite_quality):  # noqa: F811
    engine, sim, _ = sqlite_quality
    solo = sim.projects["solo"]
    with engine.connect() as conn:
        before = read_quality(conn, solo)
    assert before["labels_since"] == 0 and before["built"]
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": solo, "item_id": sim.items["solo"][0], "class_id": 1,
                                   "annotator": "zoe", "source": "ui"},
                                  {"project_id": solo, "item_id": sim.items["solo"][1], "class_id": 1,
                                   "annotator": "rita", "source": "review"}])
    assert "As of the last marts build; 1 label given since." in _text(_page(engine, solo))


def test_progress_page_without_marts_says_how_to_build_them(sqlite_url):
    engine = make_engine(sqlite_url)
    from alsql.catalog import create_project

    with write_transaction(engine) as conn:
        pid = create_project(conn, "fresh", ["a", "b"]).project_id
    page = _text(_page(engine, pid))
    engine.dispose()
    assert "Build the marts to see each annotator's figures" in page and "alsql marts build" in page
    assert "Build the marts to see agreement." in page
