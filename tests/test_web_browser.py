"""The labeling app in Debian's Chromium (Playwright): log in, label 10 items by keyboard,
undo one and relabel it; screenshots of every page go to test-artifacts/."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from alsql.schema import annotations
from alsql.schema.views import current_labels
from tests.conftest import ARTIFACTS
from tests.web_support import ANNOTATOR_PW, ADMIN_PW, live_server, seed, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite, pytest.mark.slow]




def test_label_ten_by_keyboard_undo_and_relabel(browser, sqlite_url, tmp_path):
    from playwright.sync_api import expect

    from alsql.db import make_engine
    from alsql.web import create_app

    engine = make_engine(sqlite_url)
    info = seed(engine, tmp_path / "img", n=14)
    users(engine)
    app = create_app(sqlite_url, "browser-secret")
    ARTIFACTS.mkdir(exist_ok=True)
    pid = info["project_id"]
    keys = ["1", "2", "3", "1", "2", "3", "1", "2", "3", "1"]  # cat dog bird ...
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/projects/{pid}/label")
        expect(page).to_have_url(f"{base}/login?next=/projects/{pid}/label")
        page.screenshot(path=str(ARTIFACTS / "login.png"))
        page.fill("#name", "ann")
        page.fill("#password", ANNOTATOR_PW)
        page.click("#login-button")
        expect(page).to_have_url(f"{base}/projects/{pid}/label")
        expect(page.locator("#item-id")).not_to_have_text("–")
        expect(page.locator("#left")).to_have_text("14")
        page.screenshot(path=str(ARTIFACTS / "label.png"))

        shown: list[int] = []
        for n, key in enumerate(keys, start=1):
            expect(page.locator("#item-id")).not_to_have_text("–")
            shown.append(int(page.locator("#item-id").inner_text()))
            page.keyboard.press(key)
            expect(page.locator("#session-count")).to_have_text(str(n))
        assert len(set(shown)) == 10
        # Undo: back to the last labeled item; relabel it (a new row, the old one stays).
        page.keyboard.press("Backspace")
        expect(page.locator("#item-id")).to_have_text(str(shown[-1]))
        expect(page.locator("#mode")).to_contain_text("reviewing")
        page.keyboard.press("3")
        expect(page.locator("#session-count")).to_have_text("11")
        expect(page.locator("#mode")).to_have_text("labeling")
        page.keyboard.press("Backspace")  # the history of the corrected item is shown
        expect(page.locator("#item-history li")).to_have_count(2)
        expect(page.locator("#item-history li.old")).to_have_count(1)
        expect(page.locator("#item-history li.record")).to_contain_text("bird by ann")  # the label of record
        expect(page.locator(".cls.current")).to_have_count(1)
        expect(page.locator("#class-2")).to_have_class(re.compile(r"\bcurrent\b"))
        page.screenshot(path=str(ARTIFACTS / "label-undo.png"))
        page.keyboard.press(" ")  # back to the queue without relabeling

        page.click("#nav-progress")
        expect(page.locator("#labels-total")).to_have_text("(10 labeled)")
        page.screenshot(path=str(ARTIFACTS / "progress.png"), full_page=True)
        page.click("#nav-map")
        expect(page.locator("#map-count")).to_contain_text("14 of 14 points")
        page.screenshot(path=str(ARTIFACTS / "map.png"))
        assert not errors, errors

        admin = browser.new_page(viewport={"width": 1280, "height": 900})
        admin.goto(f"{base}/login")
        admin.fill("#name", "ada")
        admin.fill("#password", ADMIN_PW)
        admin.click("#login-button")
        admin.click("#nav-admin") if admin.locator("#nav-admin").count() else admin.goto(f"{base}/admin")
        expect(admin.locator("#users")).to_contain_text("ann")
        admin.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)
        page.goto(f"{base}/admin")
        assert "admin role required" in page.content()

    with engine.connect() as conn:
        current = dict(conn.execute(select(current_labels.c.item_id, current_labels.c.class_id)
                                    .where(current_labels.c.project_id == pid)).all())
        hist = conn.execute(select(annotations.c.class_id, annotations.c.annotator, annotations.c.source)
                            .where(annotations.c.item_id == shown[-1]).order_by(annotations.c.annotation_id)).all()
        total = len(conn.execute(select(annotations.c.annotation_id)).all())
    expected = {item: int(k) - 1 for item, k in zip(shown, keys)}
    expected[shown[-1]] = 2
    assert current == expected
    assert [tuple(h) for h in hist] == [(0, "ann", "ui"), (2, "ann", "ui")]
    assert total == 11
    for name in ("login", "label", "label-undo", "progress", "map", "admin"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 1000
    app.state.engine.dispose()
    engine.dispose()
