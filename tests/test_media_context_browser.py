"""The expert's labeling page for video and sound, in Debian's Chromium (one server and one
set of media per module; each test labels in its own project):

- no request for an image that a video or sound segment does not have.
"""

from __future__ import annotations

import contextlib
import itertools
import time

import pytest

from tests.conftest import ARTIFACTS
from tests.media_context_support import FPS, ingest_context_media, ordered_round
from tests.web_support import ANNOTATOR_PW, live_server, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite, pytest.mark.slow]
DT = 1 / FPS
_names = itertools.count(1)


@pytest.fixture(scope="module")
def site(browser, tmp_path_factory):
    from alsql.db import make_engine
    from alsql.migrations import upgrade
    from alsql.web import create_app

    tmp = tmp_path_factory.mktemp("context")
    url = f"sqlite:///{tmp / 'alsql.db'}"
    upgrade(url)
    engine = make_engine(url)
    ids = ingest_context_media(engine, tmp / "media")
    users(engine)
    app = create_app(url, "context-secret")
    ARTIFACTS.mkdir(exist_ok=True)
    with live_server(app) as base:
        yield {"engine": engine, "ids": ids, "base": base, "browser": browser}
    app.state.engine.dispose()
    engine.dispose()


@contextlib.contextmanager
def labeling(site, order: list[int], page_name: str = "label", who=("ann", ANNOTATOR_PW)):
    """A page logged in on a new project whose round serves ``order``; yields (page, seen)
    where seen["errors"] are page errors and seen["failed"] the URLs answered 400 or more."""
    pid, _ = ordered_round(site["engine"], order, f"site-{next(_names)}")
    page = site["browser"].new_page(viewport={"width": 1280, "height": 800})
    seen: dict[str, list[str]] = {"errors": [], "failed": []}
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("response", lambda r: seen["failed"].append(f"{r.status} {r.url}") if r.status >= 400 else None)
    path = f"/projects/{pid}/{page_name}"
    page.goto(f"{site['base']}/login?next={path}")
    page.fill("#name", who[0])
    page.fill("#password", who[1])
    page.click("#login-button")
    page.wait_for_url(f"{site['base']}{path}")
    try:
        yield page, seen
        assert not seen["errors"], seen["errors"]
    finally:
        page.close()


def _wait_playing(page, selector: str, after: float) -> None:
    page.wait_for_function(f"() => {{ const m = document.querySelector('{selector}');"
                           f" return !m.paused && m.currentTime > {after}; }}", timeout=15000)


def test_no_request_for_an_image_a_segment_lacks(site):
    from playwright.sync_api import expect

    ids = site["ids"]
    order = [ids["video"][0], ids["audio"][0], ids["video"][3], ids["audio"][2], ids["image"][0]]
    with labeling(site, order) as (page, seen):
        for n, item in enumerate(order[:-1], start=1):
            expect(page.locator("#item-id")).to_have_text(str(item))
            expect(page.locator("#item-image")).to_be_hidden()
            page.wait_for_function("() => [...document.querySelectorAll('#context-strip img')]"
                                   ".every(i => i.complete)", timeout=20000)
            page.keyboard.press("2")
            expect(page.locator("#session-count")).to_have_text(str(n))
        expect(page.locator("#item-id")).to_have_text(str(ids["image"][0]))
        page.wait_for_function("() => document.getElementById('item-image').naturalWidth > 0")
        time.sleep(0.5)
        assert not seen["failed"], seen["failed"]        # no 404 for a segment's (non-existent) image
