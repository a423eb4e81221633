"""Imported labels close the round items they answer, so the web queue stops serving them;
``alsql round list|show|close``. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from alsql.cli.common import set_database
from alsql.db import write_transaction
from alsql.loaders.labels import import_labels
from alsql.schema import items, round_items, rounds
from tests.web_support import seed, users


@pytest.fixture
def team(db_url, engine, tmp_path):
    from alsql.web import create_app

    info = seed(engine, tmp_path / "img", n=12, round_budget=4)
    tokens = users(engine)
    app = create_app(db_url, "test-secret")
    info.update(app=app, client=TestClient(app), ann={"Authorization": f"Bearer {tokens['annotator']}"})
    yield info
    app.state.engine.dispose()
    set_database("sqlite:///alsql.db")


def _round(engine, round_id):
    with engine.connect() as conn:
        return conn.execute(select(round_items.c.item_id, items.c.uri, round_items.c.status, round_items.c.labeled_at)
                            .join(items, items.c.item_id == round_items.c.item_id)
                            .where(round_items.c.round_id == round_id).order_by(round_items.c.rank)).all()


def _round_status(engine, round_id):
    with engine.connect() as conn:
        return conn.execute(select(rounds.c.status).where(rounds.c.round_id == round_id)).scalar_one()


def _served(team) -> list[int]:
    r = team["client"].post(f"/api/projects/{team['project_id']}/queue", json={"n": 10}, headers=team["ann"])
    assert r.status_code == 200, r.text
    ids = [c["item_id"] for c in r.json()["items"]]
    team["client"].post(f"/api/projects/{team['project_id']}/leases/release", json={"item_ids": ids},
                        headers=team["ann"])
    return ids


def test_imported_labels_close_the_round_items_they_answer(team, engine, tmp_path):
    rid = team["round_id"]
    before = _round(engine, rid)
    assert sorted(_served(team)) == sorted(r.item_id for r in before)  # the queue warmed up first
    f = tmp_path / "team.csv"
    f.write_text("uri,label,annotator\n" + "".join(f"{r.uri},cat,bo\n" for r in before[:3]))
    report = import_labels(engine, f, team["project_id"])
    assert (report.written, report.closed) == (3, 3)
    after = _round(engine, rid)
    assert [r.status for r in after] == ["labeled", "labeled", "labeled", "pending"]
    assert all(r.labeled_at is not None for r in after[:3])
    assert _served(team) == [before[3].item_id]
    assert _round_status(engine, rid) == "open"
    last = tmp_path / "last.csv"
    last.write_text(f"item_id,label\n{before[3].item_id},dog\n")
    assert import_labels(engine, last, team["project_id"]).closed == 1
    assert _round_status(engine, rid) == "closed"
    assert _served(team) == []
    # Labeling an item again (or one outside any open round) touches no round item.
    assert import_labels(engine, last, team["project_id"]).closed == 0


def test_gold_and_dry_run_leave_round_items_pending(team, engine, tmp_path):
    rid = team["round_id"]
    first = _round(engine, rid)[0]
    f = tmp_path / "gold.csv"
    f.write_text(f"item_id,label\n{first.item_id},cat\n")
    assert import_labels(engine, f, team["project_id"], dry_run=True).closed == 0
    assert import_labels(engine, f, team["project_id"], source="gold", annotator="gold").closed == 0
    assert [r.status for r in _round(engine, rid)] == ["pending"] * 4


def _cli(capsys, db_url, *args) -> str:
    from alsql.cli import app

    try:
        app(["--db", db_url, *args], standalone_mode=False)
    finally:
        set_database("sqlite:///alsql.db")
    return capsys.readouterr().out


def test_round_list_show_close(team, engine, db_url, tmp_path, capsys):
    rid, pid = team["round_id"], team["project_id"]
    items_of = _round(engine, rid)
    fragment = items_of[1].uri + "#t=10.5,12"  # a segment's uri is shown whole
    with write_transaction(engine) as conn:
        conn.execute(update(items).where(items.c.item_id == items_of[1].item_id).values(uri=fragment))
    claimed = team["client"].post(f"/api/projects/{pid}/queue", json={"n": 2}, headers=team["ann"]).json()["items"]
    assert [c["item_id"] for c in claimed] == [r.item_id for r in items_of[:2]]  # by rank, leased to ann
    team["client"].post(f"/api/projects/{pid}/labels", json={"item_id": items_of[0].item_id, "class_id": 1},
                        headers=team["ann"])

    listed = _cli(capsys, db_url, "round", "list", "--project", "animals")
    header, row = [line.split() for line in listed.splitlines() if line.split()[:1] in (["round"], [str(rid)])]
    assert header == ["round", "strategy", "purpose", "status", "pending", "labeled", "skipped", "created"]
    assert row[:7] == [str(rid), "random", "train", "open", "3", "1", "0"]

    out = _cli(capsys, db_url, "round", "show", str(rid), "--format", "csv")
    got = list(csv.DictReader(io.StringIO(out)))
    assert [r["item_id"] for r in got] == [str(r.item_id) for r in items_of]
    assert list(got[0]) == ["rank", "item_id", "uri", "score", "status", "assigned_to"]
    assert got[1]["uri"] == fragment
    assert [r["status"] for r in got] == ["labeled", "pending", "pending", "pending"]
    assert [r["assigned_to"] for r in got[1:]] == ["ann", "", ""]  # who holds a pending item
    lines = _cli(capsys, db_url, "round", "show", str(rid), "--format", "jsonl").splitlines()
    assert [json.loads(x)["uri"] for x in lines] == [r["uri"] for r in got]
    path = tmp_path / "round.csv"
    assert "4 items of round" in _cli(capsys, db_url, "round", "show", str(rid), "--format", "csv", "-o", str(path))
    assert list(csv.DictReader(path.open())) == got

    said = _cli(capsys, db_url, "round", "close", str(rid))
    assert f"round {rid} closed: 3 pending items skipped, 1 labeled" in said
    assert [r.status for r in _round(engine, rid)] == ["labeled", "skipped", "skipped", "skipped"]
    assert _round_status(engine, rid) == "closed"
    assert _served(team) == []
    again = _cli(capsys, db_url, "round", "close", str(rid))
    assert f"round {rid} was already closed: 0 pending items skipped" in again


def test_round_errors(team, db_url, capsys):
    from alsql.cli import main

    for args, expected in ((["round", "show", "999"], "round 999: no such round"),
                           (["round", "close", "999"], "round 999: no such round"),
                           (["round", "show", str(team["round_id"]), "--format", "xml"],
                            "--format 'xml': expected one of csv, jsonl, table"),
                           (["round", "list", "--project", "nope"], "project 'nope' does not exist")):
        try:
            with pytest.raises(SystemExit) as exit_info:
                main(["--db", db_url, *args])
        finally:
            set_database("sqlite:///alsql.db")
        out = capsys.readouterr()
        assert exit_info.value.code == 2 and expected in out.out + out.err, out
