"""The map API: typed arrays (12 bytes a point) and lasso selections decided on the server."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from sqlalchemy import func, insert, select, update

from alsql.annotate import insert_annotations
from alsql.db import make_engine, write_transaction
from alsql.schema import embeddings, round_items, rounds
from alsql.web.mapdata import FORMAT, HEADER, points_in_polygon
from tests.web_support import seed, users


@pytest.fixture
def client_and_info(db_url, tmp_path):
    from fastapi.testclient import TestClient

    from alsql.web import create_app

    engine = make_engine(db_url)
    info = seed(engine, tmp_path / "img", n=40, round_budget=4)
    tokens = users(engine)
    rng = np.random.default_rng(5)
    xy = rng.uniform(-10, 10, (40, 2))
    with write_transaction(engine) as conn:
        for i, (x, y) in zip(info["items"], xy):
            conn.execute(update(embeddings).where(embeddings.c.model_id == info["model_id"],
                                                  embeddings.c.item_id == i).values(x=float(x), y=float(y)))
    # Labels on 6 items: three agree with the model's guess (class k % 3), three do not.
    labeled = info["items"][10:16]
    with write_transaction(engine) as conn:
        insert_annotations(conn, [
            {"project_id": info["project_id"], "item_id": i, "class_id": (k + 10) % 3 if k < 3 else ((k + 10) % 3 + 1) % 3, "annotator": "ann",
             "source": "ui"} for k, i in enumerate(labeled)])
    app = create_app(db_url, "map-secret")
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {tokens['annotator']}"
        yield client, info, engine, dict(zip(info["items"], map(tuple, xy))), labeled
    app.state.engine.dispose()
    engine.dispose()


def _decode(body: bytes) -> dict:
    magic, version, n, model, x0, x1, y0, y1 = struct.unpack_from(FORMAT, body)
    assert magic == b"AMAP" and version == 1 and HEADER == 48
    o = HEADER
    cols = {"ids": np.frombuffer(body, "<u4", n, o), "x": np.frombuffer(body, "<u2", n, o + 4 * n),
            "y": np.frombuffer(body, "<u2", n, o + 6 * n)}
    for k, name in enumerate(("label", "pred", "conf", "flags")):
        cols[name] = np.frombuffer(body, "u1", n, o + (8 + k) * n)
    return {"n": n, "model": model, "bounds": (x0, x1, y0, y1), **cols}


def test_map_bin_is_twelve_bytes_a_point(client_and_info):
    client, info, engine, xy, labeled = client_and_info
    r = client.get(f"/api/projects/{info['project_id']}/map.bin")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    m = _decode(r.content)
    assert len(r.content) == HEADER + 12 * 40 and m["n"] == 40 and m["model"] == info["model_id"]
    assert m["ids"].tolist() == sorted(info["items"])
    x0, x1, y0, y1 = m["bounds"]
    for k, i in enumerate(m["ids"].tolist()):  # quantized coordinates within half a step
        assert abs(x0 + m["x"][k] / 65535 * (x1 - x0) - xy[i][0]) <= (x1 - x0) / 65535
        assert abs(y0 + m["y"][k] / 65535 * (y1 - y0) - xy[i][1]) <= (y1 - y0) / 65535
    pos = {i: k for k, i in enumerate(m["ids"].tolist())}
    assert m["pred"][pos[info["items"][4]]] == 4 % 3
    assert all(m["label"][pos[i]] == 255 and not m["flags"][pos[i]] & 1 for i in info["items"][20:])
    assert [int(m["flags"][pos[i]] & 3) for i in labeled] == [1, 1, 1, 3, 3, 3]  # labeled; + disagrees
    assert sum(bool(f & 4) for f in m["flags"]) == 4  # pending in the open round
    conf = m["conf"][pos[info["items"][6]]] / 254
    assert abs(conf - (0.4 + 0.5 * (6 % 7) / 6)) < 0.005


def test_lasso_round_holds_exactly_the_unlabeled_points_inside(client_and_info):
    client, info, engine, xy, labeled = client_and_info
    pid = info["project_id"]
    poly = [[-10, -10], [6, -10], [6, 2], [0, 9], [-10, 4]]
    ids = np.array(list(xy))
    pts = np.array([xy[i] for i in ids])
    inside = set(ids[points_in_polygon(pts[:, 0], pts[:, 1], np.array(poly, float))].tolist())
    from matplotlib.path import Path

    assert inside == set(ids[Path(poly).contains_points(pts)].tolist())  # an independent point-in-polygon
    with engine.connect() as conn:
        queued = set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == info["round_id"]))
                     .scalars())
    want = inside - set(labeled) - queued
    assert inside & set(labeled) and len(want) > 5
    listed = client.post(f"/api/projects/{pid}/map/selection", json={"polygon": poly, "action": "list"}).json()
    assert {it["item_id"] for it in listed["items"]} == want and listed["inside"] == len(inside)
    assert listed["labeled"] == len(inside & set(labeled)) and listed["queued"] == len(inside & queued)
    # Ids sent along are not trusted: membership comes from the stored coordinates.
    made = client.post(f"/api/projects/{pid}/map/selection",
                       json={"polygon": poly, "action": "round", "item_ids": [info["items"][0]]})
    assert made.status_code == 200, made.text
    rid = made.json()["round_id"]
    assert made.json()["items"] == len(want) and made.json()["label_url"] == f"/projects/{pid}/label?round={rid}"
    with engine.connect() as conn:
        r = conn.execute(select(rounds).where(rounds.c.round_id == rid)).one()
        got = set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == rid)).scalars())
    assert got == want and r.strategy == "map" and r.purpose == "train" and r.status == "open"
    assert r.params["polygon"] == [[float(a), float(b)] for a, b in poly] and r.budget == len(want)
    again = client.post(f"/api/projects/{pid}/map/selection", json={"polygon": poly, "action": "round"})
    assert again.status_code == 400 and "no unlabeled item" in again.json()["detail"]


def test_the_lasso_round_is_served_before_older_open_rounds_until_it_is_done(client_and_info):
    from alsql.catalog import create_project
    from alsql.schema import annotations

    client, info, engine, _, _ = client_and_info
    pid, older = info["project_id"], info["round_id"]
    api = f"/api/projects/{pid}"
    made = client.post(f"{api}/map/selection", json={"polygon": [[-10, -10], [10, -10], [10, 10], [-10, 10]],
                                                     "action": "round"}).json()
    rid = made["round_id"]
    assert rid > older and made["label_url"] == f"/projects/{pid}/label?round={rid}"
    with engine.connect() as conn:
        def pending(r):
            return set(conn.execute(select(round_items.c.item_id).where(round_items.c.round_id == r,
                                                                        round_items.c.status == "pending")).scalars())
        mine, old = pending(rid), pending(older)
    assert len(mine) > 10 and len(old) == 4 and not mine & old
    # Without a round the older open round comes first (another user leases two of its items).
    admin = {"Authorization": "Bearer tok-admin-0123456789"}
    plain = client.post(f"{api}/queue", json={"n": 2}, headers=admin).json()
    taken = {i["item_id"] for i in plain["items"]}
    assert plain["round_id"] == older and taken <= old and len(taken) == 2
    # With round_id: only the lasso round's items, through claims, labels and skips, until it is done.
    first = client.post(f"{api}/queue", json={"n": 3, "round_id": rid})
    assert first.status_code == 200, first.text
    held = first.json()["items"]
    assert first.json()["round_id"] == rid
    # A second annotator on the same round gets other items of it (leases keep them apart).
    theirs = client.post(f"{api}/queue", json={"n": 2, "round_id": rid}, headers=admin).json()["items"]
    theirs = {i["item_id"] for i in theirs}
    assert len(theirs) == 2 and theirs <= mine and not theirs & {i["item_id"] for i in held}
    served, k = [i["item_id"] for i in held], 0
    while held:
        cur = held.pop(0)["item_id"]
        body = {"item_id": cur, "next": 3 - len(held), "exclude": [h["item_id"] for h in held], "round_id": rid}
        r = (client.post(f"{api}/skip", json=body) if k % 3 == 2
             else client.post(f"{api}/labels", json={**body, "class_id": 1}))
        assert r.status_code == 200, r.text
        held += r.json()["items"]
        served += [i["item_id"] for i in r.json()["items"]]
        k += 1
    ours = len(mine) - len(theirs)
    assert len(served) == len(set(served)) == ours + 2
    assert set(served[:ours]) == mine - theirs  # every free item of the round before any other
    assert set(served[ours:]) == old - taken  # then the usual order; leases still respected
    status = select(rounds.c.status).where(rounds.c.round_id == rid)
    with engine.connect() as conn:
        assert conn.execute(status).scalar() == "open"  # the other annotator still holds two
    for i in theirs:
        assert client.post(f"{api}/labels", headers=admin,
                           json={"item_id": i, "class_id": 0, "next": 1, "round_id": rid}).status_code == 200
    with engine.connect() as conn:
        assert conn.execute(status).scalar() == "closed"
        n_ann = conn.execute(select(func.count()).select_from(annotations)).scalar()
    # A done round of the project is no error: the claim falls back to the open rounds.
    again = client.post(f"{api}/queue", json={"n": 2, "round_id": rid})
    assert again.status_code == 200 and {i["item_id"] for i in again.json()["items"]} <= old
    # A round that is not the project's: 404 (labels with it write nothing); a malformed one: 422.
    with write_transaction(engine) as conn:
        other = create_project(conn, "elsewhere", ["a", "b"]).project_id
        foreign = conn.execute(insert(rounds).values(project_id=other, strategy="random", budget=1)
                               .returning(rounds.c.round_id)).scalar_one()
    for bad in (foreign, 10**9):
        r = client.post(f"{api}/queue", json={"n": 1, "round_id": bad})
        assert r.status_code == 404 and f"round_id {bad}" in r.json()["detail"]
        r = client.post(f"{api}/labels", json={"item_id": served[0], "class_id": 0, "round_id": bad})
        assert r.status_code == 404
        assert client.post(f"{api}/skip", json={"item_id": served[0], "round_id": bad}).status_code == 404
    for bad in (0, -3, "x", 2**60):
        assert client.post(f"{api}/queue", json={"n": 1, "round_id": bad}).status_code == 422
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(annotations)).scalar() == n_ann


def test_bad_selections_are_refused_and_write_nothing(client_and_info):
    client, info, engine, _, _ = client_and_info
    url = f"/api/projects/{info['project_id']}/map/selection"
    assert client.post(url, json={"polygon": [[0, 0], [1, 1]], "action": "round"}).status_code == 422
    assert client.post(url, json={"polygon": [[0, 0], [1, 1], [1]], "action": "round"}).status_code == 400
    assert client.post(url, json={"polygon": [[0, 0], [1, 1], [2, 0]], "action": "drop"}).status_code == 422
    far = client.post(url, json={"polygon": [[100, 100], [101, 100], [101, 101]], "action": "round"})
    assert far.status_code == 400 and "0 points inside" in far.json()["detail"]
    with engine.connect() as conn:
        assert conn.execute(select(rounds.c.round_id)).scalars().all() == [info["round_id"]]
    client.headers.pop("Authorization")
    assert client.get(f"/api/projects/{info['project_id']}/map.bin").status_code == 401


def test_map_bin_without_a_model(sqlite_url, tmp_path):
    from fastapi.testclient import TestClient

    from alsql.catalog import create_project
    from alsql.web import create_app

    engine = make_engine(sqlite_url)
    tokens = users(engine)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "empty", ["a", "b"]).project_id
    app = create_app(sqlite_url, "map-secret")
    with TestClient(app) as client:
        r = client.get(f"/api/projects/{pid}/map.bin", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert r.status_code == 200 and len(r.content) == HEADER and _decode(r.content)["n"] == 0
    app.state.engine.dispose()
    engine.dispose()


def test_a_model_of_another_project_or_none_at_all_is_404(client_and_info):
    client, info, engine, xy, labeled = client_and_info
    pid = info["project_id"]
    for model_id in (info["model_id"] + 1, 2**32 + 7):  # unknown; beyond the header's 32 bits
        r = client.get(f"/api/projects/{pid}/map.bin", params={"model_id": model_id})
        assert r.status_code == 404 and str(model_id) in r.json()["detail"]
        r = client.post(f"/api/projects/{pid}/map/selection",
                        json={"polygon": [[-1, -1], [1, -1], [0, 1]], "model_id": model_id})
        assert r.status_code == 404
    assert client.get(f"/api/projects/{pid}/map.bin", params={"model_id": info["model_id"]}).status_code == 200


def test_two_databases_in_one_process_keep_their_own_maps(tmp_path):
    """The per-process map cache is keyed by the database too: the same model id in two
    databases, neither mapped by the map step, serves each its own points."""
    from alsql.catalog import get_project
    from alsql.migrations import upgrade
    from alsql.web.mapdata import map_binary

    bodies = []
    for n in (14, 40):
        url = f"sqlite:///{tmp_path / f'db{n}.db'}"
        upgrade(url)
        engine = make_engine(url)
        info = seed(engine, tmp_path / f"img{n}", n=n)
        with engine.connect() as conn:
            bodies.append(_decode(map_binary(conn, get_project(conn, str(info["project_id"])), info["model_id"])))
        engine.dispose()
    assert [b["model"] for b in bodies] == [1, 1]
    assert [b["n"] for b in bodies] == [14, 40]
