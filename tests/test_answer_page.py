"""The progress page shows the analyst's answer as ``alsql answer`` prints it, read from
the answer marts as last built (SQLite and PostgreSQL through the API; Chromium draws the
intervals), and says how to build them when they are missing; the page never runs dbt."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select

from alsql.db import make_engine
from alsql.pipelines.answer import NO_LABELS
from alsql.schema import users as users_table
from alsql.web import create_app
from tests.answer_support import answered  # noqa: F401 - the fixture
from tests.conftest import ARTIFACTS
from tests.web_support import ANNOTATOR_PW, live_server, seed, users

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]


def _tokens(engine) -> dict[str, str]:
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(users_table)).scalar_one():
            return {"annotator": "tok-annot-0123456789"}
    return users(engine)


def _progress(url: str, engine, project_id: int) -> dict:
    token = _tokens(engine)["annotator"]
    app = create_app(url, "answer-secret")
    try:
        res = TestClient(app).get(f"/api/projects/{project_id}/progress", headers={"Authorization": f"Bearer {token}"})
    finally:
        app.state.engine.dispose()
    assert res.status_code == 200, res.text
    return res.json()


def test_progress_api_carries_the_answer(answered):
    a = answered
    got = _progress(a.url, a.engine, a.projects["machines"])["answer"]
    want = a.first
    assert got["built"] and got["problem"] is None
    assert (got["mart"], got["model_id"], got["level"]) == (want["mart"], want["model_id"], want["level"])
    [e], [w] = got["estimands"], want["estimands"]
    assert (e["sentence"], e["halving"], e["problem"]) == (w["sentence"], w["halving_text"], None)
    pair = [w["answer"]["group_a"], w["answer"]["group_b"]]
    assert [g["grp"] for g in e["groups"]] == pair
    rows = {(r["grp"], r["estimator"]): r for r in w["estimates"]}
    shown = [(g["grp"], r) for g in e["groups"] for r in g["estimates"]]
    assert len(shown) == len(rows) == 6
    for grp, r in shown:
        for col in ("estimate", "ci_low", "ci_high"):
            assert math.isclose(r[col], rows[(grp, r["estimator"])][col], rel_tol=1e-12, abs_tol=1e-15)
    # a project without evaluation labels: the page says what to run instead of a figure
    unlabeled = _progress(a.url, a.engine, a.projects["unlabeled"])["answer"]
    assert unlabeled["built"] and unlabeled["estimands"]
    assert all(x["problem"].endswith(NO_LABELS) for x in unlabeled["estimands"])
    unpredicted = _progress(a.url, a.engine, a.projects["unpredicted"])["answer"]
    assert unpredicted["problem"].endswith("has no predictions: run alsql infer") and not unpredicted["estimands"]


def test_progress_api_without_the_marts_builds_nothing(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    info = seed(engine, tmp_path / "img", n=6)
    answer = _progress(sqlite_url, engine, info["project_id"])["answer"]
    assert answer == {"built": False, "problem": None, "mart": None, "level": None, "model_id": None,
                      "estimands": []}
    with engine.connect() as conn:  # the page ran no dbt: no mart appeared
        assert not inspect(conn).has_table("answer_estimates")
    engine.dispose()


@pytest.mark.browser
@pytest.mark.parametrize("answered", ["sqlite"], indirect=True)
def test_progress_page_draws_the_intervals_and_the_sentence(answered, browser):
    from playwright.sync_api import expect

    a = answered
    _tokens(a.engine)
    app = create_app(a.url, "answer-browser-secret")
    pid = a.projects["machines"]
    with live_server(app) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/login?next=/projects/{pid}/progress")
        page.fill("#name", "ann")
        page.fill("#password", ANNOTATOR_PW)
        page.click("#login-button")
        expect(page).to_have_url(f"{base}/projects/{pid}/progress")
        card = page.locator("#answer")
        expect(card.locator(".ci-row")).to_have_count(6)
        expect(card.locator(".ci-row.ppi")).to_have_count(2)
        expect(card.locator(".sentence")).to_have_text(a.first["estimands"][0]["sentence"])
        expect(page.locator("#answer-mart")).to_contain_text("maintenance_risk")
        # each dot lies on its bar: the estimate inside its interval, on one scale
        for k in range(6):
            row = card.locator(".ci-row").nth(k)
            bar, dot = row.locator(".ci-bar").bounding_box(), row.locator(".ci-dot").bounding_box()
            centre = dot["x"] + dot["width"] / 2
            assert bar["x"] - 1 <= centre <= bar["x"] + bar["width"] + 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#answer-card").screenshot(path=str(ARTIFACTS / "progress-answer.png"))
        assert not errors, errors
    app.state.engine.dispose()
