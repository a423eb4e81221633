"""``alsql project set``, ``alsql labels import --gold``, the reviewer role and the admin
quality API: good values stored, bad ones refused naming the option and range, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from alsql.cli import main
from alsql.cli.common import set_database
from alsql.db import make_engine, write_transaction
from alsql.quality import read_settings
from alsql.schema import annotations, users
from tests.conftest import add_items


@pytest.fixture(autouse=True)
def _reset_database():
    yield
    set_database("sqlite:///alsql.db")


def run(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out = capsys.readouterr()
    return info.value.code, out.out + out.err


def _db(db_url):
    set_database(db_url)
    return make_engine(db_url)


def test_project_set_stores_and_refuses(db_url, capsys):
    engine = _db(db_url)
    assert run(capsys, "project", "create", "birds", "--classes", "a,b")[0] == 0
    code, out = run(capsys, "project", "set", "--project", "birds", "--overlap", "0.2",
                    "--overlap-annotators", "3", "--gold-rate", "0.05")
    assert code == 0 and "overlap 0.2" in out and "3 annotators" in out and "gold rate 0.05" in out
    for args, needle in [(("--overlap", "1.5"), "--overlap 1.5: expected a number from 0 to 1"),
                         (("--overlap", "-0.1"), "--overlap -0.1: expected a number from 0 to 1"),
                         (("--gold-rate", "2"), "--gold-rate 2.0: expected a number from 0 to 1"),
                         (("--gold-rate", "nan"), "--gold-rate nan: expected a number from 0 to 1"),
                         (("--overlap-annotators", "1"), "--overlap-annotators 1: expected an integer from 2 to 20"),
                         (("--overlap-annotators", "21"), "--overlap-annotators 21: expected an integer from 2 to 20")]:
        code, out = run(capsys, "project", "set", "--project", "birds", "--overlap", "0.9", *args)
        assert code == 2 and needle in out, (args, out)
    code, out = run(capsys, "project", "set", "--project", "nope", "--overlap", "0.1")
    assert code == 2 and "nope" in out
    with engine.connect() as conn:  # nothing of the refused calls was written
        assert read_settings(conn, 1).__dict__ == {"overlap": 0.2, "overlap_annotators": 3, "gold_rate": 0.05}
    engine.dispose()


def test_labels_import_gold(db_url, capsys, tmp_path):
    engine = _db(db_url)
    run(capsys, "project", "create", "birds", "--classes", "a,b")
    ids = add_items(engine, 3)
    f = tmp_path / "gold.csv"
    f.write_text(f"item_id,label,annotator\n{ids[0]},a,someone\n{ids[1]},b,\n")
    code, out = run(capsys, "labels", "import", str(f), "--project", "birds", "--gold")
    assert code == 0 and "wrote 2 gold labels" in out
    code, out = run(capsys, "labels", "import", str(f), "--project", "birds", "--gold", "--annotator", "expert1")
    assert code == 0
    with engine.connect() as conn:
        rows = conn.execute(select(annotations.c.item_id, annotations.c.annotator, annotations.c.source)
                            .order_by(annotations.c.annotation_id)).all()
    assert [tuple(r) for r in rows] == [(ids[0], "gold", "gold"), (ids[1], "gold", "gold"),
                                        (ids[0], "expert1", "gold"), (ids[1], "expert1", "gold")]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"item_id,label\n{ids[2]},zebra\n")
    code, out = run(capsys, "labels", "import", str(bad), "--project", "birds", "--gold")
    assert code == 2 and "zebra" in out and "nothing was written" in out
    code, out = run(capsys, "labels", "import", str(f), "--project", "birds", "--gold", "--annotator", " ")
    assert code == 2 and "--annotator" in out
    with engine.connect() as conn:
        assert len(conn.execute(select(annotations.c.annotation_id)).all()) == 4
    engine.dispose()


def test_reviewer_role(db_url, capsys):
    engine = _db(db_url)
    code, out = run(capsys, "user", "add", "rita", "--role", "reviewer", "--password", "long-enough-pw")
    assert code == 0 and "reviewer" in out
    code, out = run(capsys, "user", "add", "bob", "--role", "boss", "--password", "long-enough-pw")
    assert code == 2 and "annotator, reviewer, admin" in out
    with engine.connect() as conn:
        assert conn.execute(select(users.c.name, users.c.role)).all() == [("rita", "reviewer")]
    engine.dispose()


def test_admin_quality_api(db_url, engine):
    from fastapi.testclient import TestClient

    from alsql.catalog import create_project
    from alsql.web import create_app
    from tests.web_support import users as make_users

    tokens = make_users(engine)
    with write_transaction(engine) as conn:
        pid = create_project(conn, "birds", ["a", "b"]).project_id
    app = create_app(db_url, "secret")
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    with TestClient(app) as c:
        assert c.get(f"/api/projects/{pid}/quality", headers=admin).json() == {
            "overlap": 0.0, "overlap_annotators": 2, "gold_rate": 0.0}
        r = c.post(f"/api/projects/{pid}/quality", json={"overlap": 0.25, "gold_rate": 0.1}, headers=admin)
        assert r.status_code == 200 and r.json() == {"overlap": 0.25, "overlap_annotators": 2, "gold_rate": 0.1}
        r = c.post(f"/api/projects/{pid}/quality", json={"overlap_annotators": 1, "overlap": 0.5}, headers=admin)
        assert r.status_code == 400 and "overlap-annotators 1" in r.text
        r = c.post(f"/api/projects/{pid}/quality", json={"overlap": 0.5},
                   headers={"Authorization": f"Bearer {tokens['annotator']}"})
        assert r.status_code == 403
        assert c.get(f"/api/projects/{pid}/quality", headers=admin).json()["overlap"] == 0.25
        page = c.get("/admin", headers=admin)
        assert f'id="form-quality-{pid}"' in page.text and "admin-quality.js" in page.text
    app.state.engine.dispose()
