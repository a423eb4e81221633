"""The expert's labeling page for video and sound, in Debian's Chromium (one server and one
set of media per module; each test labels in its own project):

- a segment is shown in context: its file, entity, time range, and a strip of its
  neighbours by start time with itself marked (frames for video, spectrograms for sound);
- video controls confined to the segment: pause/play, frame step, speed, a scrubber that
  clamps at the end; the loop never presents a frame at or after the segment's end;
- a sound clip's own timeline (not the whole file's), a playhead and axes on its spectrogram;
- one meaning per key per screen, and a `?` overlay listing every key for the item's kind
  (labeling, reviewing after an undo, and the review page);
- no request for an image that a video or sound segment does not have.
"""

from __future__ import annotations

import contextlib
import itertools
import time

import pytest

from tests.conftest import ARTIFACTS
from tests.media_context_support import FPS, ingest_context_media, ordered_round
from tests.web_support import ADMIN_PW, ANNOTATOR_PW, live_server, users

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


def _settled(page) -> None:
    page.wait_for_function("() => !document.getElementById('item-video').seeking")


def test_segment_shown_in_its_context(site):
    from playwright.sync_api import expect

    ids = site["ids"]
    with labeling(site, [ids["video"][1], ids["audio"][3]]) as (page, _):
        expect(page.locator("#item-id")).to_have_text(str(ids["video"][1]))
        expect(page.locator("#context-source")).to_have_text("cam-012.webm")
        expect(page.locator("#context-entity")).to_have_text("cam-012")
        expect(page.locator("#context-range")).to_have_text("2.00–4.00 s of 8.00 s")
        strip = page.locator("#context-strip li")
        expect(strip).to_have_count(4)                  # one before, itself, two after (by start time)
        assert strip.evaluate_all("ls => ls.map(l => l.dataset.item)") == [str(i) for i in ids["video"]]
        assert strip.evaluate_all("ls => ls.map(l => l.innerText)") == [
            "0.00–2.00 s", "2.00–4.00 s", "4.00–6.00 s", "6.00–8.00 s"]
        current = page.locator("#context-strip li.current")
        expect(current).to_have_count(1)
        assert current.get_attribute("data-item") == str(ids["video"][1])
        assert current.get_attribute("aria-current") == "true"
        page.wait_for_function("() => [...document.querySelectorAll('#context-strip img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)", timeout=20000)
        # One frame per neighbour: 96 px wide, and darker to brighter as the video goes on.
        grey = page.eval_on_selector_all("#context-strip img", """is => is.map(i => {
            const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(i, 0, 0);
            const d = g.getImageData(0, 0, 8, 8).data; return [i.naturalWidth, d[0]]; })""")
        assert [w for w, _ in grey] == [96] * 4 and [g for _, g in grey] == sorted(g for _, g in grey), grey
        page.keyboard.press("1")
        expect(page.locator("#item-id")).to_have_text(str(ids["audio"][3]))
        expect(page.locator("#context-source")).to_have_text("pump-03.wav")
        expect(page.locator("#context-entity")).to_have_text("pump-03")
        expect(page.locator("#context-range")).to_have_text("3.00–4.00 s of 4.00 s")
        expect(page.locator("#context-strip li")).to_have_count(4)   # the last clip: three before it
        assert page.locator("#context-strip li.current").get_attribute("data-item") == str(ids["audio"][3])
        assert page.eval_on_selector_all("#context-strip img", "is => is.map(i => new URL(i.src).pathname)") == [
            f"/api/items/{i}/spectrogram.png" for i in ids["audio"]]


def test_video_controls_confined_to_the_segment(site):
    from playwright.sync_api import expect

    ids = site["ids"]
    with labeling(site, [ids["video"][1]]) as (page, _):
        for sel in ("#media-play", "#frame-back", "#frame-fwd", "#media-speed", "#media-scrub", "#media-time"):
            expect(page.locator(sel)).to_be_visible()
        assert float(page.eval_on_selector("#media-scrub", "s => s.max")) == 2.0
        _wait_playing(page, "#item-video", 2.1)
        page.click("#media-play")                        # pause
        page.wait_for_function("() => { const v = document.getElementById('item-video'); return v.paused && !v.seeking; }")
        t0 = page.eval_on_selector("#item-video", "v => v.currentTime")
        assert 2.0 <= t0 < 4.0, t0
        page.eval_on_selector("#media-scrub", "s => { s.value = '1'; s.dispatchEvent(new Event('input')); }")
        _settled(page)
        assert page.eval_on_selector("#item-video", "v => v.currentTime") == 3.0
        page.keyboard.press(".")                         # one frame forward, one back (the stream's 25 fps)
        _settled(page)
        t1 = page.eval_on_selector("#item-video", "v => v.currentTime")
        page.keyboard.press(",")
        page.keyboard.press(",")
        _settled(page)
        t2 = page.eval_on_selector("#item-video", "v => v.currentTime")
        assert t1 - 3.0 == pytest.approx(DT, abs=2e-3) and t1 - t2 == pytest.approx(2 * DT, abs=2e-3), (t1, t2)
        page.click("#frame-fwd")
        _settled(page)
        assert page.eval_on_selector("#item-video", "v => v.currentTime") == pytest.approx(t1 - DT, abs=2e-3)
        page.keyboard.press("]")
        assert page.eval_on_selector("#item-video", "v => v.playbackRate") == 1.5
        for _ in range(6):
            page.keyboard.press("[")
        assert page.eval_on_selector("#item-video", "v => [v.playbackRate, document.getElementById('media-speed').value]") == [0.25, "0.25"]
        page.select_option("#media-speed", "2")
        assert page.eval_on_selector("#item-video", "v => v.playbackRate") == 2.0
        # The scrubber set past the end clamps to the last frame, before the start to the start.
        page.eval_on_selector("#media-scrub", "s => { s.value = '99'; s.dispatchEvent(new Event('input')); }")
        _settled(page)
        v, s = page.eval_on_selector("#item-video", "v => [v.currentTime, document.getElementById('media-scrub').value]")
        assert 4.0 - 1.5 * DT <= v < 4.0 and 2.0 - 1.5 * DT <= float(s) <= 2.0, (v, s)
        page.eval_on_selector("#media-scrub", "s => { s.value = '-5'; s.dispatchEvent(new Event('input')); }")
        _settled(page)
        assert page.eval_on_selector("#item-video", "v => [v.currentTime, v.paused]") == [2.0, True]
        page.keyboard.press("Enter")                     # play again, at 2x, still inside [2, 4)
        _wait_playing(page, "#item-video", 2.05)
        for _ in range(10):
            assert 2.0 <= page.eval_on_selector("#item-video", "v => v.currentTime") < 4.0
            time.sleep(0.1)


def test_video_loop_never_presents_a_frame_at_or_after_the_end(site):
    ids = site["ids"]
    with labeling(site, [ids["video"][1]]) as (page, _):
        _wait_playing(page, "#item-video", 2.1)
        page.evaluate("""() => { window.presented = []; const v = document.getElementById('item-video');
            const cb = (now, meta) => { window.presented.push(meta.mediaTime); v.requestVideoFrameCallback(cb); };
            v.requestVideoFrameCallback(cb); }""")
        time.sleep(9.0)                                  # four loops and more
        shown = page.evaluate("() => window.presented.slice()")
        page.screenshot(path=str(ARTIFACTS / "label-video-context.png"))
    loops = sum(b < a for a, b in zip(shown, shown[1:]))
    assert loops >= 3, shown
    late = [t for t in shown if not 2.0 - 1e-3 <= t < 4.0 - 1e-3]
    assert not late, (late, loops)                       # never the next segment's first frame
    assert max(shown) >= 4.0 - 2.5 * DT, max(shown)      # the segment's last frames do show


def test_sound_clip_timeline_playhead_and_axes(site):
    from playwright.sync_api import expect

    ids = site["ids"]
    with labeling(site, [ids["audio"][1]]) as (page, _):
        page.wait_for_function("() => document.getElementById('item-spectrogram').naturalWidth >= 64", timeout=20000)
        assert page.eval_on_selector("#item-audio", "a => a.hasAttribute('controls')") is False  # not the file's timeline
        expect(page.locator("#media-scrub")).to_be_visible()
        assert float(page.eval_on_selector("#media-scrub", "s => s.max")) == 1.0   # the clip's length
        expect(page.locator("#frame-back")).to_be_hidden()
        freq = page.eval_on_selector_all("#spectro-freq .tick", "ts => ts.map(t => [t.innerText, parseFloat(t.style.bottom)])")
        labels = [t for t, _ in freq]
        assert {"500 Hz", "1 kHz", "4 kHz"} <= set(labels), freq
        assert [b for _, b in freq] == sorted(b for _, b in freq) and all(0 < b < 100 for _, b in freq)
        # 1 kHz sits on the HTK mel scale of 64 bands up to 8 kHz: band (mel(1000) / step - 0.5) / 64.
        step = 2595 * __import__("math").log10(1 + 8000 / 700) / 65
        k1 = (2595 * __import__("math").log10(1 + 1000 / 700) / step - 0.5) / 64
        assert dict(freq)["1 kHz"] == pytest.approx(100 * k1, abs=0.01)
        assert page.eval_on_selector_all("#spectro-time .tick", "ts => ts.map(t => t.innerText)") == [
            "0 s", "0.25", "0.5", "0.75", "1"]
        page.keyboard.press(" ")                         # Space replays the clip
        _wait_playing(page, "#item-audio", 1.15)
        left = [page.eval_on_selector("#spectro-playhead", "p => parseFloat(p.style.left)")]
        time.sleep(0.3)
        left.append(page.eval_on_selector("#spectro-playhead", "p => parseFloat(p.style.left)"))
        t = page.eval_on_selector("#item-audio", "a => a.currentTime")
        assert left[0] != left[1] and all(0 <= x <= 100 for x in left) and 1.0 <= t < 2.0, (left, t)
        text = page.locator("#media-time").inner_text()
        assert text.endswith("/ 1.00 s") and 0 <= float(text.split(" / ")[0]) <= 1.0, text
        page.screenshot(path=str(ARTIFACTS / "label-audio-context.png"))


def _keys(page) -> dict[str, str]:
    """The keys overlay as {keys: meaning}, opened with `?` and closed with Esc."""
    from playwright.sync_api import expect

    page.keyboard.press("?")
    expect(page.locator("#key-help")).to_be_visible()
    rows = page.eval_on_selector_all("#key-help-table tr", "rs => rs.map(r => [r.cells[0].innerText, r.cells[1].innerText])")
    page.keyboard.press("Escape")
    expect(page.locator("#key-help")).to_be_hidden()
    keys = [k for row, _ in rows for k in row.split(" / ")]
    assert len(keys) == len(set(keys)), rows             # each key once: one meaning on this screen
    return dict(rows)


def test_one_meaning_per_key_and_the_keys_overlay(site):
    from playwright.sync_api import expect

    ids = site["ids"]
    with labeling(site, [ids["video"][2], ids["audio"][2], ids["image"][0]]) as (page, _):
        expect(page.locator("#item-id")).to_have_text(str(ids["video"][2]))
        expect(page.locator("#skip-key")).to_have_text("Shift+Space")   # Space replays a segment
        rows = _keys(page)
        assert rows["Space"] == "replay the segment from its start" and rows["Shift+Space"] == "skip this item (no label)"
        assert rows["Enter"] == "pause / play" and rows[", / ."] == "one frame back / forward (pauses)"
        assert rows["[ / ]"].startswith("slower / faster") and rows["Backspace / ←"].startswith("undo")
        assert rows["1"] == "label normal" and rows["2"] == "label abnormal"
        assert rows["?"] == "show or hide this list" and rows["Esc"] == "close this list"
        page.keyboard.press("?")                         # while the list is open no other key acts
        page.keyboard.press("1")
        page.keyboard.press("Shift+Space")
        page.keyboard.press("Escape")
        expect(page.locator("#item-id")).to_have_text(str(ids["video"][2]))
        expect(page.locator("#session-count")).to_have_text("0")
        page.keyboard.press(" ")
        time.sleep(0.3)
        expect(page.locator("#item-id")).to_have_text(str(ids["video"][2]))   # replayed, not skipped
        page.keyboard.press("Shift+Space")
        expect(page.locator("#item-id")).to_have_text(str(ids["audio"][2]))
        rows = _keys(page)
        assert rows["Space"] == "replay the clip from its start" and ", / ." not in rows
        page.keyboard.press("2")
        expect(page.locator("#item-id")).to_have_text(str(ids["image"][0]))
        expect(page.locator("#skip-key")).to_have_text("Space")
        rows = _keys(page)
        assert rows["Space / Shift+Space"] == "skip this item (no label)" and "Enter" not in rows
        # ArrowLeft undoes, as Backspace does: the clip again, reviewing; Space still replays it.
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#item-id")).to_have_text(str(ids["audio"][2]))
        expect(page.locator("#mode")).to_have_text("reviewing (press a class key to correct, Shift+Space to go on)")
        rows = _keys(page)
        assert rows["Shift+Space"] == "go on to the queue without relabeling" and rows["1"] == "correct the label to normal"
        page.keyboard.press(" ")
        time.sleep(0.3)
        expect(page.locator("#item-id")).to_have_text(str(ids["audio"][2]))
        page.keyboard.press("Shift+Space")
        expect(page.locator("#item-id")).to_have_text(str(ids["image"][0]))
        expect(page.locator("#mode")).to_have_text("labeling")
        page.click("#help-button")
        expect(page.locator("#key-help")).to_be_visible()
        page.keyboard.press("Escape")


def test_review_page_keys_for_a_sound_clip(site):
    from playwright.sync_api import expect

    from alsql.annotate import insert_annotations
    from alsql.db import write_transaction

    ids, clip = site["ids"], site["ids"]["audio"][0]
    with labeling(site, [], "review", ("ada", ADMIN_PW)) as (page, _):
        pid = int(page.url.rstrip("/").split("/")[-2])
        with write_transaction(site["engine"]) as conn:
            insert_annotations(conn, [{"project_id": pid, "item_id": clip, "class_id": c, "annotator": who}
                                      for c, who in ((0, "ann"), (1, "bob"))])
        page.reload()
        expect(page.locator("#item-id")).to_have_text(str(clip))
        expect(page.locator("#context-range")).to_have_text("0.00–1.00 s of 4.00 s")
        expect(page.locator("#skip-key")).to_have_text("Shift+Space")
        rows = _keys(page)
        assert rows["Space"] == "replay the clip from its start" and rows["Shift+Space"] == "next item without deciding"
        assert rows["Backspace / ←"] == "previous item" and rows["1"].startswith("decide normal")
        page.keyboard.press(" ")
        time.sleep(0.3)
        expect(page.locator("#item-id")).to_have_text(str(clip))   # Space replayed; it did not go on
        page.keyboard.press("Shift+Space")
        expect(page.locator("#empty")).to_be_visible()
        assert ids


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
