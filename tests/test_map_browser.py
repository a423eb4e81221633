"""The map page in Debian's Chromium (Playwright): 100,000 points painted, the hover card shows the
item's thumbnail, a lasso makes a round of exactly the unlabeled points inside it and the label
page serves them. Screenshots go to test-artifacts/."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.schema import embeddings, items, model_versions, predictions, round_items, rounds
from tests.conftest import ARTIFACTS
from tests.web_support import ANNOTATOR_PW, live_server, seed, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite, pytest.mark.slow]

BIG = 100_000



@pytest.fixture(scope="module")
def big_map(tmp_path_factory):
    """20 real PNG items on a ring at the left, 100,000 synthetic items in 10 blobs; a few labels."""
    from alsql.db import make_engine
    from alsql.migrations import ready_engine

    tmp = tmp_path_factory.mktemp("map")
    url = f"sqlite:///{tmp / 'map.db'}"
    ready_engine(url).dispose()
    engine = make_engine(url)
    info = seed(engine, tmp / "img", n=20)
    users(engine)
    mid, pid = info["model_id"], info["project_id"]
    with write_transaction(engine) as conn:  # the seed's round is done: only the map's round will be open
        conn.execute(update(rounds).where(rounds.c.round_id == info["round_id"]).values(status="closed"))
        for k, i in enumerate(info["items"]):
            a = 2 * np.pi * k / 20
            conn.execute(update(embeddings).where(embeddings.c.model_id == mid, embeddings.c.item_id == i)
                         .values(x=-60 + 6 * np.cos(a), y=6 * np.sin(a)))
    rng = np.random.default_rng(0)
    centres = rng.uniform(-40, 40, (10, 2))
    centres[:, 0] = np.abs(centres[:, 0])  # blobs to the right of the ring
    cls = rng.integers(0, 3, BIG)
    blob = rng.integers(0, 10, BIG)
    xy = centres[blob] + rng.normal(0, 3, (BIG, 2))
    rows = [{"uri": f"file:///synthetic/{k:07d}.png", "sha256": f"{k + 10**6:064x}", "media_type": "image/png",
             "width": 8, "height": 8, "status": "ok"} for k in range(BIG)]
    with write_transaction(engine) as conn:
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True), rows)
                   .scalars())
        conn.execute(insert(predictions), [{"model_id": mid, "item_id": i, "class_id": int(c), "confidence": 0.7,
                                            "margin": 0.2, "entropy": 0.4} for i, c in zip(ids, cls)])
        conn.execute(insert(embeddings), [{"model_id": mid, "item_id": i, "x": float(x), "y": float(y)}
                                          for i, (x, y) in zip(ids, xy)])
        conn.execute(update(model_versions).where(model_versions.c.model_id == mid)
                     .values(params={"map": {"method": "tsne", "items": BIG + 20}}))
        insert_annotations(conn, [{"project_id": pid, "item_id": i, "class_id": int(c), "annotator": "ann",
                                   "source": "ui"} for i, c in zip(ids[:3000:7], cls[:3000:7])])
    yield {"url": url, "engine": engine, **info}
    engine.dispose()


def _login(page, base, pid):
    page.goto(f"{base}/projects/{pid}/map")
    page.fill("#name", "ann")
    page.fill("#password", ANNOTATOR_PW)
    page.click("#login-button")
    page.wait_for_url(f"{base}/projects/{pid}/map")
    from playwright.sync_api import expect

    expect(page.locator("#map-count")).to_contain_text(" points (model", timeout=60_000)
    assert page.evaluate("() => window.alsqlMap.ready")


def _painted(png: bytes) -> int:
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((a.sum(axis=2) < 3 * 245).sum())


def test_map_paints_100k_points_and_hover_shows_the_thumbnail(browser, big_map):
    from playwright.sync_api import expect

    from alsql.web import create_app

    app = create_app(big_map["url"], "map-secret")
    pid = big_map["project_id"]
    ARTIFACTS.mkdir(exist_ok=True)
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _login(page, base, pid)
        state = page.evaluate("() => ({points: alsqlMap.points, drawn: alsqlMap.drawn, renderer: alsqlMap.renderer})")
        print("map renderer in headless Chromium:", state["renderer"])
        assert state["points"] == state["drawn"] == BIG + 20
        assert state["renderer"] in ("webgl", "canvas")
        expect(page.locator("#map-count")).to_contain_text(f"{BIG + 20} of {BIG + 20} points")
        shot = page.locator("#map").screenshot(path=str(ARTIFACTS / "map-100k.png"))
        assert _painted(shot) > 60_000  # ten dense blobs and a ring of 20 (of 700,000 pixels)
        page.select_option("#colour-by", "disagree")
        assert _painted(page.locator("#map").screenshot()) > 20_000

        # Hover one of the real items: its card shows the thumbnail, the label and the guess.
        item = big_map["items"][5]
        with big_map["engine"].connect() as conn:
            x, y = conn.execute(select(embeddings.c.x, embeddings.c.y).where(
                embeddings.c.model_id == big_map["model_id"], embeddings.c.item_id == item)).one()
        sx, sy = page.evaluate(f"() => alsqlMap.toScreen({x}, {y})")
        box = page.locator("#map").bounding_box()
        page.mouse.move(box["x"] + sx, box["y"] + sy)
        expect(page.locator("#map-tip")).to_be_visible()
        expect(page.locator("#tip-id")).to_have_text(str(item))
        expect(page.locator("#tip-label")).to_have_text("not labeled")
        expect(page.locator("#tip-guess")).to_contain_text("bird")  # seed: class k % 3, item 5 -> bird
        expect(page.locator("#tip-img")).to_have_attribute("src", f"/api/items/{item}/image")
        for _ in range(100):  # the thumbnail loads (24 x 24 PNG)
            if page.evaluate("() => document.getElementById('tip-img').naturalWidth") == 24:
                break
            time.sleep(0.1)
        assert page.evaluate("() => document.getElementById('tip-img').naturalWidth") == 24
        page.screenshot(path=str(ARTIFACTS / "map-hover.png"))

        # Wheel zooms around the cursor (the hovered item stays under it, its neighbours spread out);
        # dragging pans; a click opens the item on the labeling page.
        before = page.evaluate("() => alsqlMap.toScreen(20, 0)")
        page.mouse.wheel(0, -600)
        page.wait_for_timeout(200)
        after = page.evaluate("() => alsqlMap.toScreen(20, 0)")
        still = page.evaluate(f"() => alsqlMap.toScreen({x}, {y})")
        assert abs(still[0] - sx) < 2 and abs(still[1] - sy) < 2
        assert abs(after[0] - sx) > 1.5 * abs(before[0] - sx)
        page.mouse.move(box["x"] + 500, box["y"] + 650)
        page.mouse.down()
        page.mouse.move(box["x"] + 560, box["y"] + 600, steps=5)
        page.mouse.up()
        moved = page.evaluate(f"() => alsqlMap.toScreen({x}, {y})")
        assert abs(moved[0] - still[0] - 60) < 2 and abs(moved[1] - still[1] + 50) < 2
        with page.expect_navigation(url=f"{base}/projects/{pid}/label?item={item}"):
            page.mouse.click(box["x"] + moved[0], box["y"] + moved[1])

        # Without WebGL the same points go to a 2-D canvas.
        page.goto(f"{base}/projects/{pid}/map?renderer=canvas")
        expect(page.locator("#map-count")).to_contain_text(f"{BIG + 20} of {BIG + 20} points", timeout=60_000)
        assert page.evaluate("() => alsqlMap.renderer") == "canvas"
        assert _painted(page.locator("#map").screenshot(path=str(ARTIFACTS / "map-canvas.png"))) > 60_000
        assert not errors, errors
    app.state.engine.dispose()


def test_lasso_makes_a_round_of_the_unlabeled_points_inside_and_the_label_page_serves_them(browser, big_map):
    """... and serves them before the items of an older open round (the page opens on ?round=)."""
    from alsql.web import create_app

    app = create_app(big_map["url"], "map-secret")
    pid, engine, older = big_map["project_id"], big_map["engine"], big_map["round_id"]
    with write_transaction(engine) as conn:  # an older open round (the ring's 20 items, outside the lasso)
        conn.execute(update(rounds).where(rounds.c.round_id == older).values(status="open"))
    try:
        _lasso_then_label(browser, big_map, app, pid, engine, older)
    finally:
        with write_transaction(engine) as conn:
            conn.execute(update(rounds).where(rounds.c.round_id == older).values(status="closed"))
        app.state.engine.dispose()


def _lasso_then_label(browser, big_map, app, pid, engine, older):
    from playwright.sync_api import expect

    from alsql.schema import annotations
    from alsql.web.mapdata import points_in_polygon

    with engine.connect() as conn:
        labeled = set(conn.execute(select(annotations.c.item_id).where(annotations.c.project_id == pid)).scalars())
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _login(page, base, pid)
        page.check("#tool-lasso")
        box = page.locator("#map").bounding_box()
        cx, cy = page.evaluate("() => alsqlMap.toScreen(20, 0)")
        outline = [(cx + 40 * np.cos(a) * (1.3 if k % 2 else 0.8), cy + 40 * np.sin(a))
                   for k, a in enumerate(np.linspace(0, 2 * np.pi, 24, endpoint=False))]
        page.mouse.move(box["x"] + outline[0][0], box["y"] + outline[0][1])
        page.mouse.down()
        for px, py in outline[1:]:
            page.mouse.move(box["x"] + px, box["y"] + py, steps=2)
        page.mouse.up()
        expect(page.locator("#selection")).to_be_visible()
        page.locator("#map-app").screenshot(path=str(ARTIFACTS / "map-lasso.png"))
        with page.expect_navigation(url=re.compile(re.escape(f"{base}/projects/{pid}/label?round=") + r"\d+$")):
            page.click("#label-these")
        expect(page.locator("#item-id")).not_to_have_text("–")
        left = page.locator("#left").inner_text()
        shown_round = page.locator("#round-id").inner_text()
        shown = [int(page.locator("#item-id").inner_text())]
        for _ in range(5):  # label on: every item the page serves comes from the lasso's round
            page.click("#class-0")
            expect(page.locator("#item-id")).not_to_have_text(str(shown[-1]))
            shown.append(int(page.locator("#item-id").inner_text()))
        expect(page.locator("#session-count")).to_have_text("5")
        assert not errors and page.locator("#error").inner_text() == "", (errors, page.locator("#error").inner_text())
        # A link naming a round that is not the project's says so and serves the open rounds.
        page.goto(f"{base}/projects/{pid}/label?round=987654321")
        expect(page.locator("#error")).to_contain_text("round_id 987654321: not a round of project")
        expect(page.locator("#item-id")).not_to_have_text("–")
        assert not errors, errors

    with engine.connect() as conn:
        r = conn.execute(select(rounds).where(rounds.c.strategy == "map")).one()
        got = set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == r.round_id)).scalars())
        old = set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == older)).scalars())
        done = set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == r.round_id,
                                                                    round_items.c.status == "labeled")).scalars())
        pts = conn.execute(select(embeddings.c.item_id, embeddings.c.x, embeddings.c.y)
                           .where(embeddings.c.model_id == big_map["model_id"])).all()
    ids = np.array([p[0] for p in pts])
    xy = np.array([(p[1], p[2]) for p in pts])
    poly = np.array(r.params["polygon"])
    from matplotlib.path import Path as MplPath

    inside = set(ids[MplPath(poly).contains_points(xy)].tolist())
    assert inside == set(ids[points_in_polygon(xy[:, 0], xy[:, 1], poly)].tolist())
    assert len(inside) > 100 and inside & labeled
    assert got == inside - labeled  # exactly the unlabeled points inside the lasso
    assert r.round_id > older and len(old) == 20 and not old & got
    assert int(shown_round) == r.round_id and int(left.replace(",", "")) == len(got) + len(old)
    assert len(set(shown)) == 6 and set(shown) <= got  # the lasso's items first, not the older round's
    assert done == set(shown[:5])
