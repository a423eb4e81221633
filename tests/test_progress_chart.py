"""The progress page on day one: labels over time per hour (not one dot), and accuracy drawn on a
log scale of the error with each class's recall beside it. The data endpoint on SQLite and
PostgreSQL; the page in Debian's Chromium."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from alsql.annotate import insert_annotations
from alsql.db import make_engine, write_transaction
from alsql.schema import model_versions
from tests.web_support import ANNOTATOR_PW, live_server, seed, users

DAY = datetime(2026, 11, 2, tzinfo=timezone.utc)
# Day one: labels at 09:10, 09:40, 11:05 (two), 14:59 -> hours 09..14, empty ones counted 0.
DAY_ONE = [DAY + timedelta(hours=9, minutes=10), DAY + timedelta(hours=9, minutes=40),
           DAY + timedelta(hours=11, minutes=5), DAY + timedelta(hours=11, minutes=5, seconds=30),
           DAY + timedelta(hours=14, minutes=59)]
RECALL = {"cat": 0.97, "dog": 0.62, "bird": None}


def _project(engine, tmp_path, when):
    info = seed(engine, tmp_path / "img", n=12)
    with write_transaction(engine) as conn:
        for k, t in enumerate(when):
            insert_annotations(conn, [{"project_id": info["project_id"], "item_id": info["items"][k], "class_id": k % 3,
                                       "annotator": "ann", "source": "ui", "created_at": t}])
        for acc in (0.85, 0.99):
            conn.execute(insert(model_versions).values(
                project_id=info["project_id"], architecture="smallcnn", label_count=100,
                metrics={"accuracy": acc, "evaluated": 200, "per_class_recall": RECALL}, status="ready"))
    return info


@pytest.fixture
def client_for(tmp_path):
    from fastapi.testclient import TestClient

    from alsql.web import create_app

    made = []

    def make(url):
        tokens = users(make_engine(url))
        app = create_app(url, "progress-secret")
        client = TestClient(app)
        client.headers["Authorization"] = f"Bearer {tokens['annotator']}"
        made.append(app)
        return client

    yield make
    for app in made:
        app.state.engine.dispose()


def test_day_one_is_binned_by_hour_and_models_carry_error_and_recall(db_url, tmp_path, client_for):
    engine = make_engine(db_url)
    info = _project(engine, tmp_path, DAY_ONE)
    p = client_for(db_url).get(f"/api/projects/{info['project_id']}/progress").json()
    engine.dispose()
    t = p["labels_over_time"]
    assert t["unit"] == "hour"
    assert [b["start"] for b in t["bins"]] == [f"2026-11-02T{h:02d}:00Z" for h in range(9, 15)]
    assert [b["labels"] for b in t["bins"]] == [2, 0, 2, 0, 0, 1]
    assert len(p["labels_per_day"]) == 1  # the old single dot, still answered
    models = p["models"][1:]  # after the seed's model
    assert [round(m["error"], 6) for m in models] == [0.15, 0.01]
    assert models[0]["per_class_recall"] == [{"name": "cat", "recall": 0.97}, {"name": "dog", "recall": 0.62},
                                             {"name": "bird", "recall": None}]


def test_a_longer_span_is_binned_by_day_with_empty_days_counted(sqlite_url, tmp_path, client_for):
    engine = make_engine(sqlite_url)
    when = [DAY + timedelta(hours=23), DAY + timedelta(days=1, hours=1), DAY + timedelta(days=3, hours=12)]
    info = _project(engine, tmp_path, when)
    with write_transaction(engine) as conn:  # a model not evaluated: no error, no recall
        conn.execute(insert(model_versions).values(project_id=info["project_id"], architecture="smallcnn",
                                                   label_count=3, metrics={"accuracy": None, "evaluated": 0},
                                                   status="ready"))
    p = client_for(sqlite_url).get(f"/api/projects/{info['project_id']}/progress").json()
    engine.dispose()
    t = p["labels_over_time"]
    assert t["unit"] == "day" and [b["labels"] for b in t["bins"]] == [1, 1, 0, 1]
    assert [b["start"][:10] for b in t["bins"]] == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert p["models"][-1]["error"] is None and p["models"][-1]["per_class_recall"] == []


@pytest.mark.browser
def test_progress_page_on_day_one_in_the_browser(browser, sqlite_url, tmp_path):
    from playwright.sync_api import expect

    from alsql.web import create_app
    from tests.conftest import ARTIFACTS

    engine = make_engine(sqlite_url)
    info = _project(engine, tmp_path, DAY_ONE)
    users(engine)
    engine.dispose()
    app = create_app(sqlite_url, "progress-secret")
    pid = info["project_id"]
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/projects/{pid}/progress")
        page.fill("#name", "ann")
        page.fill("#password", ANNOTATOR_PW)
        page.click("#login-button")
        page.wait_for_url(f"{base}/projects/{pid}/progress")
        expect(page.locator("#labels-total")).to_have_text("(5 labeled)")
        chart = page.locator("#per-day")
        expect(chart).to_have_attribute("data-unit", "hour")
        assert chart.get_attribute("data-bins") == "6"
        # The cumulative line starts at 0 and climbs to 5 over six hours: seven points, not one dot.
        pts = [tuple(map(float, p.split(","))) for p in
               chart.locator("polyline.cumulative").get_attribute("points").split()]
        ys = [y for _, y in pts]
        assert len(pts) == 7 and ys == sorted(ys, reverse=True) and ys[0] > ys[-1]
        assert chart.locator("rect.bin").count() == 3  # the hours with labels
        assert "09:00" in chart.text_content() and "15:00" in chart.text_content()
        # 85% and 99%: the 1%-error bar is far longer than the 15%-error one (log10 scale).
        widths = page.evaluate("""() => [...document.querySelectorAll('#models .row.model')].map(
            (r) => r.querySelector('.fill').getBoundingClientRect().width / r.querySelector('.track').getBoundingClientRect().width)""")
        assert len(widths) == 3 and widths[2] > 2 * widths[1] > 0  # after the seed's model (50%)
        expect(page.locator("#models .row.model").nth(1)).to_contain_text("85.0% · 15.0% error of 200")
        expect(page.locator("#models .row.model").nth(2)).to_contain_text("99.0% · 1.0% error")
        recall = page.locator("#models .row.recall")
        expect(recall).to_have_count(6)  # three classes beside each model
        expect(recall.nth(1)).to_contain_text("dog")
        expect(recall.nth(1)).to_contain_text("recall 62.0%")
        expect(recall.nth(2)).to_contain_text("no items")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "progress-day-one.png"), full_page=True)
        assert not errors, errors
        page.close()
    app.state.engine.dispose()
