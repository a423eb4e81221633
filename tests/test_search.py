"""Semantic search (``alsql search``, the map's search box): the items nearest a text by cosine similarity
of a tiny CLIP's stored vectors, against a numpy reference; scope, pool, rounds, errors; both backends."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sqlalchemy import func, select

from alsql.errors import AlsqlError
from alsql.schema import embeddings, items, round_items, rounds
from tests.conftest import need_module
from tests.foundation_support import save_clip, save_vit
from tests.pipeline_helpers import label, make_project, write_pngs

need_module("transformers")

QUERY = "a bright square"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"clip": save_clip(root / "clip"), "vit": save_vit(root / "vit")}


def _embedded(engine, tmp_path, models, n: int = 30, name: str = "bands"):
    """A project of ``n`` PNGs embedded by the tiny CLIP (float32 vectors, a PCA map)."""
    from alsql.models.embed import embed_project

    proj, oracle = make_project(engine, tmp_path / "imgs", n=n, name=name)
    rep = embed_project(engine, proj.name, f"hf:{models['clip']}", dtype="float32", device="cpu",
                        map_method="pca", say=lambda _l: None)
    return proj, oracle, rep.encoder_model_id


def _reference(engine, spec: str, encoder_id: int, candidates, text: str, k: int):
    """(ids, similarities) of the k best cosine similarities, computed here from the stored vectors."""
    from alsql.models.embed import read_vectors
    from alsql.models.foundation import embed_text

    ids = np.array(sorted(candidates), np.int64)
    with engine.connect() as conn:
        vec = read_vectors(conn, encoder_id, ids).astype(np.float64)
    q = embed_text(spec, [text])[0].astype(np.float64)
    sims = vec @ q / (np.linalg.norm(vec, axis=1) * np.linalg.norm(q))
    order = np.lexsort((ids, -sims))[:k]
    return ids[order].tolist(), sims[order]


def _all_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(select(items.c.item_id).order_by(items.c.item_id)).scalars()]


def test_search_returns_the_k_nearest_by_cosine_as_numpy_does(engine, tmp_path, models, monkeypatch):
    from alsql.models import search as mod
    from alsql.models.select import create_round

    proj, oracle, eid = _embedded(engine, tmp_path, models)
    spec = f"hf:{models['clip']}"
    every = _all_ids(engine)
    labeled = every[:5]
    label(engine, proj.project_id, oracle, labeled)
    rid = create_round(engine, proj.project_id, "random", 4, seed=1)
    with engine.connect() as conn:
        queued = [int(i) for i in conn.execute(
            select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars()]
    pool = set(every) - set(labeled) - set(queued)
    assert len(pool) == 21
    import transformers

    loads = []
    real = transformers.AutoModel.from_pretrained
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        lambda *a, **kw: loads.append(a[0]) or real(*a, **kw))
    mod._TOWERS.clear()

    res = mod.search(engine, proj.name, QUERY, k=7)
    assert loads == [str(models["clip"])]  # the text tower, loaded once for this process
    want_ids, want_sims = _reference(engine, spec, eid, pool, QUERY, 7)
    assert (res.encoder_model_id, res.spec, res.scanned) == (eid, spec, 21)
    assert [h.item_id for h in res.hits] == want_ids and [h.rank for h in res.hits] == list(range(1, 8))
    np.testing.assert_allclose([h.similarity for h in res.hits], want_sims, rtol=1e-5, atol=1e-6)
    with engine.connect() as conn:
        where = {int(i): (u, x, y) for i, u, x, y in conn.execute(
            select(items.c.item_id, items.c.uri, embeddings.c.x, embeddings.c.y)
            .join(embeddings, embeddings.c.item_id == items.c.item_id).where(embeddings.c.model_id == eid))}
    assert [(h.uri, h.x, h.y) for h in res.hits] == [where[h.item_id] for h in res.hits]
    assert all(h.x is not None for h in res.hits)

    # Labeled and queued items too with include_labeled; pages of 3 rows give the same answer (the merge).
    wide_ids, wide_sims = _reference(engine, spec, eid, every, QUERY, 12)
    monkeypatch.setattr(mod, "PAGE_BYTES", 3 * 16 * 4)
    paged = mod.search(engine, proj.name, QUERY, k=12, include_labeled=True)
    whole = mod.search(engine, proj.name, "dark", k=500)
    assert len(loads) == 3  # the two references loaded their own; the later searches loaded nothing
    assert [h.item_id for h in paged.hits] == wide_ids and paged.scanned == 30
    np.testing.assert_allclose([h.similarity for h in paged.hits], wide_sims, rtol=1e-5, atol=1e-6)
    # k above the pool: every pool item, in order.
    assert [h.item_id for h in whole.hits] == _reference(engine, spec, eid, pool, "dark", 500)[0]
    assert len(mod._TOWERS) == 1


def test_top_k_merges_pages_in_bounded_memory():
    from alsql.models.search import top_k

    rng = np.random.default_rng(3)
    vec = rng.normal(size=(1000, 8)).astype(np.float32)
    vec[17] = 0  # a zero vector has similarity 0, not NaN
    ids = np.arange(1000, dtype=np.int64) * 3 + 5
    q = rng.normal(size=8).astype(np.float32)
    pages = ((ids[s:s + 64], vec[s:s + 64]) for s in range(0, 1000, 64))
    got_ids, got_s, seen = top_k(pages, q, 25)
    num, den = vec.astype(np.float64) @ q, np.linalg.norm(vec.astype(np.float64), axis=1) * np.linalg.norm(q)
    sims = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    order = np.lexsort((ids, -sims))[:25]
    assert seen == 1000 and got_ids.tolist() == ids[order].tolist()
    np.testing.assert_allclose(got_s, sims[order], rtol=1e-5)


def test_search_keeps_to_the_projects_scope(engine, tmp_path, models):
    from alsql.db import write_transaction
    from alsql.loaders.ingest import ingest
    from alsql.models.search import search
    from alsql.scope import set_scope

    proj, _, eid = _embedded(engine, tmp_path, models, n=12)
    write_pngs(tmp_path / "other", 8, seed=4, start=500)
    ingest(engine, str(tmp_path / "other"))
    from alsql.models.embed import embed_project

    embed_project(engine, proj.name, f"hf:{models['clip']}", dtype="float32", device="cpu", map_method=None)
    with engine.connect() as conn:
        other = {int(i) for i, u in conn.execute(select(items.c.item_id, items.c.uri)) if "/other/" in u}
        assert conn.execute(select(func.count()).where(embeddings.c.model_id == eid)).scalar() == 20
    assert other & {h.item_id for h in search(engine, proj.name, QUERY, k=20).hits}
    prefix = (tmp_path / "imgs").as_uri()
    with write_transaction(engine) as conn:
        set_scope(conn, proj.project_id, prefixes=[prefix])
    hits = search(engine, proj.name, QUERY, k=20).hits
    assert len(hits) == 12 and not other & {h.item_id for h in hits}
    assert len(search(engine, proj.name, QUERY, k=20, include_labeled=True).hits) == 12


def _cli(capsys, url: str, *args: str) -> tuple[int, str]:
    from alsql.cli import main

    try:
        main(["--db", url, *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_table_and_round_of_the_hits(engine, db_url, tmp_path, models, capsys):
    from alsql.models.search import search

    proj, oracle, eid = _embedded(engine, tmp_path, models, n=20)
    label(engine, proj.project_id, oracle, _all_ids(engine)[:3])
    want = search(engine, proj.name, QUERY, k=6).hits
    code, out = _cli(capsys, db_url, "search", "--project", proj.name, QUERY, "--k", "6", "--round")
    assert code == 0, out
    for h in want:  # one table row per hit: rank, item id, (uri), similarity
        assert re.search(rf"│\s*{h.rank}\s*│\s*{h.item_id}\s*│.*│\s*{h.similarity:.4f}\s*│", out), out
    with engine.connect() as conn:
        rnd = conn.execute(select(rounds).where(rounds.c.project_id == proj.project_id)).one()
        held = [int(i) for i in conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rnd.round_id)
                                             .order_by(round_items.c.rank)).scalars()]
    assert f"round {rnd.round_id}: 6 items to label" in out
    assert (rnd.strategy, rnd.purpose, rnd.status, rnd.budget) == ("search", "train", "open", 6)
    assert rnd.params["query"] == QUERY and rnd.params["encoder_model_id"] == eid
    assert held == [h.item_id for h in want]
    # The hits are now queued: the next search skips them; --budget sizes the round beyond --k.
    again = search(engine, proj.name, QUERY, k=6).hits
    assert not {h.item_id for h in again} & set(held)
    code, out = _cli(capsys, db_url, "search", "--project", proj.name, QUERY, "--k", "2", "--round", "--budget", "5")
    assert code == 0 and "5 items to label" in out, out
    # Labeled hits are left out of a round (--all shows them).
    code, out = _cli(capsys, db_url, "search", "--project", proj.name, QUERY, "--all", "--k", "20")
    assert code == 0 and len(re.findall(r"^│\s*\d+\s*│", out, re.M)) == 20, out


def test_errors_are_one_clear_line_exit_2(engine, db_url, tmp_path, models, capsys):
    from alsql.models.embed import embed_project
    from alsql.models.search import search

    proj, _ = make_project(engine, tmp_path / "imgs", n=6)
    code, out = _cli(capsys, db_url, "search", "--project", proj.name, QUERY)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert f"project {proj.project_id} has no stored vectors" in out
    vit = embed_project(engine, proj.name, f"hf:{models['vit']}", device="cpu", map_method=None).encoder_model_id
    code, out = _cli(capsys, db_url, "search", "--project", proj.name, QUERY)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert (f"encoder {vit} (hf:{models['vit']}) has no text tower: search needs a CLIP-like model, e.g. "
            f"alsql embed --encoder hf:openai/clip-vit-base-patch32") in out.replace("\n", "")
    clip = embed_project(engine, proj.name, f"hf:{models['clip']}", device="cpu", map_method=None).encoder_model_id
    assert search(engine, proj.name, QUERY, k=3).encoder_model_id == clip  # the newest with a text tower
    with pytest.raises(AlsqlError, match=f"encoder {vit} .* has no text tower"):
        search(engine, proj.name, QUERY, encoder_model_id=vit)
    with pytest.raises(AlsqlError, match="--encoder-model 999999: not a model of project"):
        search(engine, proj.name, QUERY, encoder_model_id=999999)
    for text in ("", "   ", "x" * 501):
        with pytest.raises(AlsqlError, match="search text: expected 1 to 500 characters"):
            search(engine, proj.name, text)
    with pytest.raises(AlsqlError, match="--k 0: expected 1 to 10,000"):
        search(engine, proj.name, QUERY, k=0)
    code, out = _cli(capsys, db_url, "search", "--project", proj.name, QUERY, "--budget", "3")
    assert code == 2 and "--budget 3: applies to --round" in out, out
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rounds)).scalar() == 0


def test_the_search_api_and_its_round(engine, db_url, tmp_path, models):
    from fastapi.testclient import TestClient

    from alsql.models.search import search
    from alsql.web import create_app
    from tests.web_support import users

    proj, oracle, eid = _embedded(engine, tmp_path, models, n=20)
    label(engine, proj.project_id, oracle, _all_ids(engine)[:4])
    tokens = users(engine)
    pid = proj.project_id
    app = create_app(db_url, "search-secret")
    with TestClient(app) as client:
        assert client.get(f"/api/projects/{pid}/search", params={"q": QUERY}).status_code == 401
        client.headers["Authorization"] = f"Bearer {tokens['annotator']}"
        r = client.get(f"/api/projects/{pid}/search", params={"q": QUERY, "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        want = search(engine, pid, QUERY, k=5).hits
        assert body["encoder_model_id"] == eid and body["compared"] == 16
        assert [it["item_id"] for it in body["items"]] == [h.item_id for h in want]
        assert [(it["uri"], it["x"], it["y"]) for it in body["items"]] == [(h.uri, h.x, h.y) for h in want]
        np.testing.assert_allclose([it["similarity"] for it in body["items"]], [h.similarity for h in want])
        wide = client.get(f"/api/projects/{pid}/search", params={"q": QUERY, "k": 30, "all": "true"}).json()
        assert len(wide["items"]) == 20
        for bad in ({"q": ""}, {"q": "x" * 501}, {"q": "   "}, {"q": QUERY, "k": 0}, {}):
            r = client.get(f"/api/projects/{pid}/search", params=bad)
            assert r.status_code == 422, (bad, r.text)
        assert "q" in json.dumps(client.get(f"/api/projects/{pid}/search", params={"q": "x" * 501}).json())
        assert client.get(f"/api/projects/{pid}/search", params={"q": QUERY, "encoder_model_id": 999999}
                          ).status_code == 400
        assert client.get("/api/projects/999999/search", params={"q": QUERY}).status_code == 404

        made = client.post(f"/api/projects/{pid}/search/round", json={"q": QUERY, "k": 5})
        assert made.status_code == 200, made.text
        rid = made.json()["round_id"]
        assert made.json()["label_url"] == f"/projects/{pid}/label?round={rid}" and made.json()["items"] == 5
        with engine.connect() as conn:
            rnd = conn.execute(select(rounds).where(rounds.c.round_id == rid)).one()
            held = [int(i) for i in conn.execute(select(round_items.c.item_id).where(
                round_items.c.round_id == rid).order_by(round_items.c.rank)).scalars()]
        assert (rnd.strategy, rnd.params["query"], held) == ("search", QUERY, [h.item_id for h in want])
        assert client.post(f"/api/projects/{pid}/search/round", json={"q": "x" * 501}).status_code == 422
        del client.headers["Authorization"]
        assert client.post(f"/api/projects/{pid}/search/round", json={"q": QUERY}).status_code == 401
    app.state.engine.dispose()


@pytest.mark.browser
@pytest.mark.slow
def test_the_map_search_box_rings_the_hits_and_labels_them(browser, tmp_path, models):
    from playwright.sync_api import expect

    from alsql.db import make_engine
    from alsql.migrations import ready_engine
    from alsql.models.heads import train_head
    from alsql.models.search import search
    from alsql.web import create_app
    from tests.web_support import ANNOTATOR_PW, live_server, users

    url = f"sqlite:///{tmp_path / 'search.db'}"
    ready_engine(url).dispose()
    engine = make_engine(url)
    proj, oracle, eid = _embedded(engine, tmp_path, models, n=30)
    label(engine, proj.project_id, oracle, _all_ids(engine)[:9])
    train_head(engine, proj.name, encoder_model_id=eid, epochs=2, min_steps=5, say=None)  # the map shown is eid's
    users(engine)
    pid = proj.project_id
    want = [h.item_id for h in search(engine, pid, QUERY, k=8).hits]
    app = create_app(url, "search-browser")
    with live_server(app) as base:
        page = browser.new_page()
        page.goto(f"{base}/projects/{pid}/map")
        page.fill("#name", "ann")
        page.fill("#password", ANNOTATOR_PW)
        page.click("#login-button")
        page.wait_for_url(f"{base}/projects/{pid}/map")
        expect(page.locator("#map-count")).to_contain_text("30 of 30 points", timeout=60_000)
        page.fill("#search-text", QUERY)
        page.fill("#search-k", "8")
        page.click("#search-go")
        expect(page.locator("#search-count")).to_contain_text("8 hits", timeout=60_000)
        got = page.evaluate("() => window.alsqlMap.search")
        assert got["ids"] == want and got["onMap"] == 8
        assert page.locator("#search-table tbody tr").count() == 8
        page.screenshot(path=str(tmp_path / "search.png"))
        page.click("#search-label")
        page.wait_for_url(f"{base}/projects/{pid}/label?round=*", timeout=60_000)
        page.close()
    with engine.connect() as conn:
        rnd = conn.execute(select(rounds).where(rounds.c.strategy == "search")).one()
        held = [int(i) for i in conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rnd.round_id)
                                             .order_by(round_items.c.rank)).scalars()]
    assert held == want and rnd.params["query"] == QUERY
    app.state.engine.dispose()
    engine.dispose()
