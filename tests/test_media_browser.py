"""Video segments and audio clips played in place on the labeling page, in Debian's Chromium.

The video element plays the segment's Media Fragment and loops inside it (its playhead
stays within [start, end] while it plays on); the audio element plays its clip beside
the spectrogram; Space replays; a class key labels the segment; the source file is
served with 206 Partial Content for the Range requests the browser makes.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from alsql.models.select import create_round
from alsql.schema import items
from alsql.schema.views import current_labels
from tests.test_media_range import add_media_items, write_media
from tests.conftest import ARTIFACTS
from tests.web_support import ANNOTATOR_PW, live_server, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite, pytest.mark.slow]


def _login(page, base: str, path: str) -> None:
    page.goto(f"{base}{path}")
    page.fill("#name", "ann")
    page.fill("#password", ANNOTATOR_PW)
    page.click("#login-button")
    page.wait_for_url(f"{base}{path}")


def _playhead(page, selector: str, seconds: float) -> list[tuple[float, bool]]:
    """(currentTime, paused) sampled every 0.2 s for ``seconds``."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(tuple(page.eval_on_selector(selector, "m => [m.currentTime, m.paused]")))
        time.sleep(0.2)
    return out


def _check_video(page, expect, info, files, ranged) -> None:
    expect(page.locator("#item-video")).to_be_visible()
    expect(page.locator("#item-image")).to_be_hidden()
    src = page.eval_on_selector("#item-video", "v => v.getAttribute('src')")
    assert src == f"/api/sources/{info['sources']['video']}/file#t=2,4"
    page.wait_for_function("() => { const v = document.getElementById('item-video');"
                           " return !v.paused && v.currentTime > 2.2; }", timeout=15000)
    samples = _playhead(page, "#item-video", 4.5)  # over two lengths of the segment: it must have looped
    assert all(2.0 - 0.05 <= t <= 4.0 + 0.05 for t, _ in samples), samples
    assert sum(not p for _, p in samples) >= len(samples) - 2, samples  # playing, not stuck at the end
    times = [t for t, _ in samples]
    assert any(b < a for a, b in zip(times, times[1:])), samples  # went back to the start at least once
    page.screenshot(path=str(ARTIFACTS / "label-video.png"))
    assert any(status == 206 and rng for status, rng in ranged), ranged  # the browser seeks with Range
    # A Range request from the page: 206 and exactly those bytes of the file.
    got = page.evaluate("""async (url) => {
        const r = await fetch(url, {headers: {Range: 'bytes=10-49'}});
        return [r.status, r.headers.get('content-range'), Array.from(new Uint8Array(await r.arrayBuffer()))];
    }""", f"/api/sources/{info['sources']['video']}/file")
    body = files["video"].read_bytes()
    assert got[0] == 206 and got[1] == f"bytes 10-49/{len(body)}" and bytes(got[2]) == body[10:50]


def _check_audio(page, expect, item: int) -> None:
    page.wait_for_function(f"() => document.getElementById('item-audio').dataset.item === '{item}'", timeout=10000)
    expect(page.locator("#item-spectrogram")).to_be_visible()
    expect(page.locator("#item-video")).to_be_hidden()
    page.wait_for_function("() => document.getElementById('item-spectrogram').naturalWidth >= 64", timeout=15000)
    page.keyboard.press(" ")  # Space replays (a key press also lets the page play sound)
    page.wait_for_function("() => { const a = document.getElementById('item-audio');"
                           " return !a.paused && a.currentTime > 0; }", timeout=15000)
    start, end = (float(page.eval_on_selector("#item-audio", f"a => a.dataset.{k}")) for k in ("start", "end"))
    t0 = page.eval_on_selector("#item-audio", "a => a.currentTime")
    time.sleep(0.5)
    t1, paused = page.eval_on_selector("#item-audio", "a => [a.currentTime, a.paused]")
    assert not paused and t1 != t0 and start - 0.05 <= t1 <= end + 0.05, (t0, t1, start, end)
    assert int(page.locator("#item-id").inner_text()) == item  # Space replayed; it did not skip
    page.screenshot(path=str(ARTIFACTS / "label-audio.png"))


def test_video_loops_in_its_fragment_and_audio_plays(browser, sqlite_url, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from alsql.db import make_engine
    from alsql.web import create_app

    engine = make_engine(sqlite_url)
    files = write_media(tmp_path / "media", video_seconds=6)
    info = add_media_items(engine, files, "media", ("normal", "abnormal"))
    middle = info["items"]["video"][1]  # [2, 4): neither end of the file, so the loop is ours
    with engine.begin() as conn:
        conn.execute(update(items).where(items.c.item_id.in_(info["items"]["video"]), items.c.item_id != middle)
                     .values(status="corrupt"))
    create_round(engine, info["project_id"], "random", 4, seed=1)  # the video segment and three audio clips
    users(engine)
    app = create_app(sqlite_url, "media-secret")
    ARTIFACTS.mkdir(exist_ok=True)
    checked: dict[str, int] = {}
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        ranged: list[tuple[int, str | None]] = []
        page.on("response", lambda r: ranged.append((r.status, r.request.headers.get("range")))
                if "/api/sources/" in r.url else None)
        _login(page, base, f"/projects/{info['project_id']}/label")
        for n in range(1, 5):
            expect(page.locator("#item-id")).not_to_have_text("–")
            item = int(page.locator("#item-id").inner_text())
            if item == middle:
                _check_video(page, expect, info, files, ranged)
            else:
                _check_audio(page, expect, item)
            checked[f"{'video' if item == middle else 'audio'}-{n}"] = item
            page.keyboard.press("2")  # one key per class, as for images: abnormal
            expect(page.locator("#session-count")).to_have_text(str(n))
        assert not errors, errors

    with engine.connect() as conn:
        labels = dict(conn.execute(select(current_labels.c.item_id, current_labels.c.class_id)).all())
    assert labels == {i: 1 for i in checked.values()} and len(labels) == 4
    assert any(k.startswith("video") for k in checked) and sum(k.startswith("audio") for k in checked) == 3
    app.state.engine.dispose()
    engine.dispose()
