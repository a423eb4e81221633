"""In Chromium: leaving the labeling page gives its leased items back (sendBeacon on
pagehide), and the progress page says "no evaluation labels yet" for a model that had
no evaluation set, never 0.0%."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select

from alsql.db import write_transaction
from alsql.schema import model_versions, round_items
from tests.web_support import ANNOTATOR_PW, live_server, seed, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite, pytest.mark.slow]


def _held(engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(round_items.c.item_id).where(
            round_items.c.assigned_to == "ann", round_items.c.status == "pending")).scalars())


def test_leaving_the_page_releases_leases_and_progress_says_no_evaluation(browser, sqlite_url, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from alsql.db import make_engine
    from alsql.web import create_app

    engine = make_engine(sqlite_url)
    info = seed(engine, tmp_path / "img", n=6)
    users(engine)
    pid = info["project_id"]
    with write_transaction(engine) as conn:
        conn.execute(insert(model_versions).values(
            project_id=pid, architecture="smallcnn", label_count=3, status="ready",
            metrics={"accuracy": None, "per_class_recall": {}, "evaluated": 0}))
    app = create_app(sqlite_url, "browser-secret")
    with live_server(app) as base:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/login?next=/projects/{pid}/label")
        page.fill("#name", "ann")
        page.fill("#password", ANNOTATOR_PW)
        page.click("#login-button")
        expect(page.locator("#item-id")).not_to_have_text("–")
        expect(page.locator("#left")).to_have_text("6")
        assert len(_held(engine)) == 3
        page.goto(f"{base}/projects/{pid}/progress")  # pagehide: the beacon gives the items back
        deadline = time.monotonic() + 10
        while _held(engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _held(engine) == set()
        models = page.locator("#models")
        expect(models).to_contain_text("no evaluation labels yet")
        expect(models).to_contain_text("50.0%")  # the seeded model was evaluated
        row = models.locator(".row.model").nth(1).inner_text()
        assert "model 2" in row and "no evaluation labels yet" in row and "%" not in row
        expect(page.locator("#evaluation")).to_contain_text("no evaluation round yet")
        assert not errors, errors
    app.state.engine.dispose()
    engine.dispose()
