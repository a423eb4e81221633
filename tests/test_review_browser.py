"""The review page in Debian's Chromium (Playwright): an admin opens it from the nav, sees
the items whose annotators disagree with each annotator's label, adjudicates one with a
single key, and the label of record changes (on the page and in the database)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.schema import annotations
from alsql.schema.views import current_labels, training_set
from tests.conftest import ARTIFACTS
from tests.web_support import ADMIN_PW, ANNOTATOR_PW, live_server, seed, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite, pytest.mark.slow]


def test_disagreements_listed_one_key_adjudicates(browser, sqlite_url, tmp_path):
    from playwright.sync_api import expect

    from alsql.db import make_engine
    from alsql.web import create_app

    engine = make_engine(sqlite_url)
    info = seed(engine, tmp_path / "img", n=8)
    users(engine)
    pid, it = info["project_id"], info["items"]
    rows = []
    for k, (a, b) in enumerate([(0, 1), (1, 1), (0, 2), (2, 1)]):  # item 1: they agree
        rows += [{"project_id": pid, "item_id": it[k], "class_id": a, "annotator": "ann"},
                 {"project_id": pid, "item_id": it[k], "class_id": b, "annotator": "bob"}]
    with write_transaction(engine) as conn:
        insert_annotations(conn, rows)
    app = create_app(sqlite_url, "browser-secret")
    ARTIFACTS.mkdir(exist_ok=True)
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/login?next=/projects/{pid}/label")
        page.fill("#name", "ada")
        page.fill("#password", ADMIN_PW)
        page.click("#login-button")
        expect(page).to_have_url(f"{base}/projects/{pid}/label")
        page.click("#nav-review")
        expect(page).to_have_url(f"{base}/projects/{pid}/review")
        # min_confidence 0.9: item 6 (guess cat at 0.90) is unlabeled, so only disagreements.
        expect(page.locator("#review-list li")).to_have_count(3)
        expect(page.locator("#item-id")).to_have_text(str(it[0]))
        expect(page.locator("#reasons")).to_have_text("annotators disagree")
        expect(page.locator("#item-labels li")).to_have_text(["ann: cat", "bob: dog"])
        expect(page.locator("#guess-class")).to_have_text("cat")
        before = page.locator("#record").inner_text()
        assert before in ("cat", "dog")
        page.screenshot(path=str(ARTIFACTS / "review.png"))

        page.keyboard.press("3")  # bird
        expect(page.locator("#decided-count")).to_have_text("1")
        expect(page.locator("#item-id")).to_have_text(str(it[2]))  # moved on to the next disagreement
        expect(page.locator(f"#row-{it[0]}")).to_have_class("decided")
        expect(page.locator(f"#row-{it[0]}")).to_contain_text("→ bird")
        page.keyboard.press("Backspace")  # back to the decided item: its label of record is the decision
        expect(page.locator("#item-id")).to_have_text(str(it[0]))
        expect(page.locator("#record")).to_have_text("bird")
        expect(page.locator("#record-by")).to_have_text("(review, ada)")
        page.screenshot(path=str(ARTIFACTS / "review-decided.png"))
        page.reload()  # the decided item left the queue
        expect(page.locator("#review-list li")).to_have_count(2)
        expect(page.locator("#item-id")).to_have_text(str(it[2]))
        assert not errors, errors

        annotator = browser.new_page()
        annotator.goto(f"{base}/login")
        annotator.fill("#name", "ann")
        annotator.fill("#password", ANNOTATOR_PW)
        annotator.click("#login-button")
        expect(annotator.locator("#nav-review")).to_have_count(0)
        annotator.goto(f"{base}/projects/{pid}/review")
        assert "reviewer or admin role required" in annotator.content()

    with engine.connect() as conn:
        rec = conn.execute(select(current_labels.c.class_id, current_labels.c.source, current_labels.c.annotator)
                           .where(current_labels.c.project_id == pid, current_labels.c.item_id == it[0])).one()
        train = conn.execute(select(training_set.c.class_id).where(training_set.c.item_id == it[0])).scalar_one()
        reviews = conn.execute(select(annotations.c.item_id, annotations.c.class_id)
                               .where(annotations.c.source == "review")).all()
    assert tuple(rec) == (2, "review", "ada") and train == 2
    assert [tuple(r) for r in reviews] == [(it[0], 2)]
    assert (ARTIFACTS / "review.png").stat().st_size > 1000
    app.state.engine.dispose()
    engine.dispose()


def test_video_and_audio_play_in_place_on_the_review_page(browser, sqlite_url, tmp_path):
    """The review page reuses the labeling page's playback: a disputed video segment loops
    in its fragment, a disputed sound clip plays beside its spectrogram (Space replays,
    Shift+Space goes on), and a class key adjudicates either."""
    from playwright.sync_api import expect

    from alsql.db import make_engine
    from alsql.web import create_app
    from tests.test_media_range import add_media_items, write_media

    engine = make_engine(sqlite_url)
    files = write_media(tmp_path / "media", video_seconds=6)
    info = add_media_items(engine, files, "media", ("normal", "abnormal"))
    pid = info["project_id"]
    video, audio = info["items"]["video"][1], info["items"]["audio"][0]  # video: the segment [2, 4)
    with write_transaction(engine) as conn:
        insert_annotations(conn, [{"project_id": pid, "item_id": i, "class_id": c, "annotator": who}
                                  for i in (video, audio) for c, who in ((0, "ann"), (1, "bob"))])
    users(engine)
    app = create_app(sqlite_url, "media-secret")
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/login?next=/projects/{pid}/review")
        page.fill("#name", "ada")
        page.fill("#password", ADMIN_PW)
        page.click("#login-button")
        expect(page.locator("#review-list li")).to_have_count(2)
        first = min(video, audio)
        for n, item in enumerate(sorted((video, audio)), start=1):
            expect(page.locator("#item-id")).to_have_text(str(item))
            if item == video:
                expect(page.locator("#item-video")).to_be_visible()
                expect(page.locator("#item-image")).to_be_hidden()
                assert page.eval_on_selector("#item-video", "v => v.getAttribute('src')").endswith("#t=2,4")
                page.wait_for_function("() => { const v = document.getElementById('item-video');"
                                       " return !v.paused && v.currentTime > 2.1 && v.currentTime <= 4.05; }",
                                       timeout=15000)
            else:
                page.wait_for_function("() => document.getElementById('item-spectrogram').naturalWidth >= 64",
                                       timeout=20000)
                expect(page.locator("#item-spectrogram")).to_be_visible()
                page.keyboard.press(" ")  # replays the clip; stays on the item
                page.wait_for_function("() => { const a = document.getElementById('item-audio');"
                                       " return !a.paused && a.currentTime > 0; }", timeout=15000)
                expect(page.locator("#item-id")).to_have_text(str(item))
            if item == first:  # Shift+Space goes on without deciding, Backspace comes back
                page.keyboard.press("Shift+Space")
                expect(page.locator("#item-id")).not_to_have_text(str(item))
                page.keyboard.press("Backspace")
                expect(page.locator("#item-id")).to_have_text(str(item))
            page.keyboard.press("2")  # abnormal
            expect(page.locator("#decided-count")).to_have_text(str(n))
        expect(page.locator("#empty")).to_be_visible()
        assert not errors, errors
    with engine.connect() as conn:
        rec = dict(conn.execute(select(current_labels.c.item_id, current_labels.c.source)
                                .where(current_labels.c.class_id == 1)).all())
    assert rec == {video: "review", audio: "review"}
    app.state.engine.dispose()
    engine.dispose()
