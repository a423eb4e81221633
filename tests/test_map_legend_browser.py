"""The map page in Debian's Chromium (Playwright): the legend follows the colour mode (a point's
colour is nearest its legend entry), the hover card shows the label of record, and a lasso drawn
partly outside the canvas keeps its vertices there, clamped to the canvas edge."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sqlalchemy import select, update

from alsql.annotate import insert_annotations
from alsql.db import write_transaction
from alsql.schema import annotations, embeddings, rounds
from tests.conftest import ARTIFACTS
from tests.web_support import ANNOTATOR_PW, live_server, seed, users

pytestmark = [pytest.mark.browser, pytest.mark.sqlite]

XS, YS = np.linspace(-10, 10, 11), np.linspace(-7, 7, 8)  # an 11 x 8 grid filling the 1000 x 700 canvas


@pytest.fixture(scope="module")
def grid_map(tmp_path_factory):
    """88 items on a grid, no open round; item 0: two votes for cat then a newer dissent (dog):
    its record is cat; item 1: bird by one annotator (the model guesses class k % 3: item 0 cat,
    item 1 dog)."""
    from alsql.db import make_engine
    from alsql.migrations import ready_engine

    tmp = tmp_path_factory.mktemp("gridmap")
    url = f"sqlite:///{tmp / 'map.db'}"
    ready_engine(url).dispose()
    engine = make_engine(url)
    info = seed(engine, tmp / "img", n=len(XS) * len(YS))
    users(engine)
    mid, pid, it = info["model_id"], info["project_id"], info["items"]
    with write_transaction(engine) as conn:
        conn.execute(update(rounds).where(rounds.c.round_id == info["round_id"]).values(status="closed"))
        for k, i in enumerate(it):
            conn.execute(update(embeddings).where(embeddings.c.model_id == mid, embeddings.c.item_id == i)
                         .values(x=float(XS[k % len(XS)]), y=float(YS[k // len(XS)])))
        for item, cls, who in ((it[0], 0, "a1"), (it[0], 0, "a2"), (it[0], 1, "a3"), (it[1], 2, "a1")):
            insert_annotations(conn, [{"project_id": pid, "item_id": item, "class_id": cls, "annotator": who,
                                       "source": "ui"}])
    yield {"url": url, "engine": engine, **info}
    engine.dispose()


@pytest.fixture
def map_page(browser, grid_map):
    from playwright.sync_api import expect

    from alsql.web import create_app

    app = create_app(grid_map["url"], "map-secret")
    pid = grid_map["project_id"]
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/projects/{pid}/map")
        page.fill("#name", "ann")
        page.fill("#password", ANNOTATOR_PW)
        page.click("#login-button")
        page.wait_for_url(f"{base}/projects/{pid}/map")
        expect(page.locator("#map-count")).to_contain_text("88 of 88 points", timeout=60_000)
        yield page
        assert not errors, errors
        page.close()
    app.state.engine.dispose()


def _legend(page) -> list[tuple[str, tuple[int, ...] | None]]:
    return page.evaluate("""() => [...document.querySelectorAll('#legend > span')].map((s) => {
        const i = s.querySelector('i');
        const m = i && /rgb\\((\\d+), ?(\\d+), ?(\\d+)\\)/.exec(i.style.background);
        return [s.textContent, m ? [+m[1], +m[2], +m[3]] : null]; })""")


def _pixel(page, item_xy) -> np.ndarray:
    from PIL import Image

    page.mouse.move(0, 0)  # no hover ring over the point
    sx, sy = page.evaluate(f"() => alsqlMap.toScreen({item_xy[0]}, {item_xy[1]})")
    img = np.asarray(Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")).astype(int)
    return img[int(round(sy)), int(round(sx))]


def _nearest_entry(legend, rgb) -> str:
    entries = [(t, c) for t, c in legend if c is not None]
    return min(entries, key=lambda e: float(np.sum((np.array(e[1]) - rgb) ** 2)))[0]


def test_the_legend_follows_the_colour_mode_and_the_card_shows_the_label_of_record(map_page, grid_map):
    from playwright.sync_api import expect

    page, it = map_page, grid_map["items"]
    xy0, xy1 = (XS[0], YS[0]), (XS[1], YS[0])
    # By label: the classes and "not labeled"; item 0 is painted in cat's colour (its record, not dog).
    legend = _legend(page)
    assert [t for t, _ in legend] == ["cat", "dog", "bird", "not labeled"]
    assert _nearest_entry(legend, _pixel(page, xy0)) == "cat"
    assert _nearest_entry(legend, _pixel(page, xy1)) == "bird"
    assert _nearest_entry(legend, _pixel(page, (XS[5], YS[4]))) == "not labeled"
    page.select_option("#colour-by", "predicted")
    legend = _legend(page)
    assert [t for t, _ in legend] == ["cat", "dog", "bird", "no guess"]
    assert _nearest_entry(legend, _pixel(page, xy1)) == "dog"  # the model's guess for item 1
    page.select_option("#colour-by", "confidence")
    legend = _legend(page)
    assert [t for t, _ in legend] == ["model's confidence:", "0%", "25%", "50%", "75%", "100%"]
    assert all(c is not None for _, c in legend[1:])
    page.select_option("#colour-by", "disagree")
    legend = _legend(page)
    assert [t for t, _ in legend] == ["model disagrees with the label", "model agrees with the label", "not labeled"]
    assert _nearest_entry(legend, _pixel(page, xy0)) == "model agrees with the label"  # record cat, guess cat
    assert _nearest_entry(legend, _pixel(page, xy1)) == "model disagrees with the label"  # record bird, guess dog
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#map-app").screenshot(path=str(ARTIFACTS / "map-legend-disagree.png"))
    # The hover card names the label of record.
    sx, sy = page.evaluate(f"() => alsqlMap.toScreen({xy0[0]}, {xy0[1]})")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + sx, box["y"] + sy)
    expect(page.locator("#tip-id")).to_have_text(str(it[0]))
    expect(page.locator("#tip-label")).to_have_text("cat")


def _dist_to_edges(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = np.clip(((pts[:, None, :] - a) * ab).sum(-1) / (ab ** 2).sum(-1), 0, 1)
    return np.linalg.norm(pts[:, None, :] - (a + t[..., None] * ab), axis=-1).min(axis=1)


def test_a_lasso_partly_outside_the_canvas_keeps_those_vertices_on_the_edge(map_page, grid_map):
    from matplotlib.path import Path
    from playwright.sync_api import expect

    page, engine, pid = map_page, grid_map["engine"], grid_map["project_id"]
    box = page.locator("#map").bounding_box()
    w, h = box["width"], box["height"]
    assert (w, h) == (1000, 700)
    drawn = [(520, 290), (900, 290), (1100, 500), (1100, 780), (800, 780), (450, 600)]  # three off the canvas
    assert box["x"] + 1100 < 1280 and box["y"] + 780 < 1000  # still inside the window
    clamped = np.array([(min(x, w), min(y, h)) for x, y in drawn], float)
    with engine.connect() as conn:
        labeled = set(conn.execute(select(annotations.c.item_id).where(annotations.c.project_id == pid)).scalars())
        pts = conn.execute(select(embeddings.c.item_id, embeddings.c.x, embeddings.c.y)
                           .where(embeddings.c.model_id == grid_map["model_id"])).all()
    ids = np.array([p[0] for p in pts])
    screen = np.array(page.evaluate("(ps) => ps.map(([x, y]) => alsqlMap.toScreen(x, y))",
                                    [[p[1], p[2]] for p in pts]))
    assert _dist_to_edges(screen, clamped).min() > 3  # no point on the fence
    want = set(ids[Path(clamped).contains_points(screen)].tolist()) - labeled
    dropped = set(ids[Path(clamped[[0, 1, 5]]).contains_points(screen)].tolist()) - labeled
    assert len(want) > len(dropped) + 5  # the corner beyond the edge holds points of its own

    page.check("#tool-lasso")
    page.mouse.move(box["x"] + drawn[0][0], box["y"] + drawn[0][1])
    page.mouse.down()
    for x, y in drawn[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)  # one move event per vertex
    page.mouse.up()
    expect(page.locator("#selection")).to_be_visible()
    expect(page.locator("#selection-count")).to_contain_text(f"about {len(want)} unlabeled")
    page.locator("#map-app").screenshot(path=str(ARTIFACTS / "map-lasso-edge.png"))
    page.click("#show-table")
    expect(page.locator("#selection-msg")).to_contain_text(f"{len(want)} unlabeled of")
    got = {int(t) for t in page.locator("#selection-table tbody tr td:first-child").all_inner_texts()}
    assert got == want
