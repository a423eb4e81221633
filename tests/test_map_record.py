"""The map's labels are the label of record (``current_labels``: review > gold > majority), not
the newest annotation, on both backends."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from alsql.annotate import insert_annotations
from alsql.db import make_engine, write_transaction
from alsql.schema import current_labels
from tests.test_map_api import _decode
from tests.web_support import seed, users


def test_map_bin_gives_the_label_of_record_not_the_newest_label(db_url, tmp_path):
    from fastapi.testclient import TestClient

    from alsql.web import create_app

    engine = make_engine(db_url)
    info = seed(engine, tmp_path / "img", n=12)
    tokens = users(engine)
    pid, it = info["project_id"], info["items"]
    # seed's guesses are class k % 3: it[0] -> 0, it[1] -> 1, it[2] -> 2, it[3] -> 0
    rows = [
        # it[0]: two annotators say 0, a third says 1 last: the majority (0) is the record.
        (it[0], 0, "a1", "ui"), (it[0], 0, "a2", "import"), (it[0], 1, "a3", "ui"),
        # it[1]: a review (2) is the record though an annotator labels 1 after it.
        (it[1], 1, "a1", "ui"), (it[1], 2, "ada", "review"), (it[1], 1, "a2", "ui"),
        # it[2]: gold (0) beats a newer vote (2).
        (it[2], 0, "ada", "gold"), (it[2], 2, "a1", "ui"),
        # it[3]: one annotator who changed their mind: the newest is the record.
        (it[3], 2, "a1", "ui"), (it[3], 1, "a1", "ui"),
    ]
    with write_transaction(engine) as conn:
        for item, cls, who, source in rows:  # one by one: annotation ids in this order
            insert_annotations(conn, [{"project_id": pid, "item_id": item, "class_id": cls, "annotator": who,
                                       "source": source}])
    with engine.connect() as conn:
        view = dict(conn.execute(select(current_labels.c.item_id, current_labels.c.class_id)
                                 .where(current_labels.c.project_id == pid)).all())
    want = {it[0]: 0, it[1]: 2, it[2]: 0, it[3]: 1}
    assert view == want
    app = create_app(db_url, "map-secret")
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {tokens['annotator']}"
        m = _decode(client.get(f"/api/projects/{pid}/map.bin").content)
        pos = {int(i): k for k, i in enumerate(m["ids"])}
        assert {i: int(m["label"][pos[i]]) for i in want} == want
        assert all(m["label"][pos[i]] == 255 and not m["flags"][pos[i]] & 1 for i in it[4:])
        # "the model disagrees with the label" follows the record: it[0] (guess 0) and it[2]
        # (guess 2, record 0 -> disagrees), it[1] (guess 1, record 2 -> disagrees), it[3] (guess 0, record 1).
        assert {i: int(m["flags"][pos[i]] & 3) for i in want} == {it[0]: 1, it[1]: 3, it[2]: 3, it[3]: 3}
        # The JSON columns (GET /api/projects/{id}/map) give the same labels of record.
        cols = client.get(f"/api/projects/{pid}/map").json()
        assert {i: cols["label"][cols["item_id"].index(i)] for i in want} == want
        # A lasso round around every point counts the four as labeled and queues none of them.
        sel = client.post(f"/api/projects/{pid}/map/selection",
                          json={"polygon": [[-2, -2], [2, -2], [2, 2], [-2, 2]], "action": "list"}).json()
        assert sel["labeled"] == 4 and not {x["item_id"] for x in sel["items"]} & set(want)
    app.state.engine.dispose()
    engine.dispose()
    assert np.all(np.diff(m["ids"].astype(np.int64)) > 0)
