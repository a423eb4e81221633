"""The marts that read every prediction, rewritten to read them once: their figures
against what Python computes from the raw rows (``marts_data``), and the one-pass
``assert_item_index_one_row_per_project_item`` test failing on a duplicated and on a
missing row (with the key's unique test, on a duplicate that stands in for a missing row).

- int_prediction_cells: one pass of the latest model's predictions counted into cells
  (entity x attribute values x capture month x predicted class x true class).
- fairness_by_group: derives every group from the cells.
- prediction_drift: counts predictions per model and class, and takes the latest
  model's per capture month and class from the cells, before joining them to the classes.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict

import pytest
from sqlalchemy import select, text

from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.pipelines.marts import build, run_dbt
from alsql.schema import evaluation_set, items, model_versions, predictions
from marts_data import populate

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]
ATTRIBUTES = ("lighting", "site")  # the project's default var('fairness_attributes')


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer_marts")
    url = f"sqlite:///{root / 'alsql.db'}"
    upgrade(url)
    engine = make_engine(url)
    populate(engine)
    result = build(url, select=["fairness_by_group", "prediction_drift", "item_index"], work_dir=root / "dbt")
    assert result.success, (result.error, [(n.name, n.status, n.message) for n in result.failed])
    yield url, engine, root
    engine.dispose()


def _latest_models(conn) -> dict[int, int]:
    """project -> its latest model that has predictions (created_at, then model_id)."""
    predicted = {m for (m,) in conn.execute(select(predictions.c.model_id).distinct())}
    rows = conn.execute(select(model_versions.c.project_id, model_versions.c.model_id, model_versions.c.created_at)).all()
    best: dict[int, tuple] = {}
    for pid, mid, at in rows:
        if mid in predicted and (pid not in best or (at, mid) > best[pid]):
            best[pid] = (at, mid)
    return {pid: mid for pid, (_at, mid) in best.items()}


def _mart(conn, table: str) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(text(f"select * from {table}"))]


def test_fairness_by_group_matches_python(built):
    _url, engine, _root = built
    with engine.connect() as conn:
        latest = _latest_models(conn)
        item_rows = {r.item_id: r for r in conn.execute(select(items.c.item_id, items.c.entity, items.c.attributes))}
        truth = {(p, i): c for p, i, c in conn.execute(
            select(evaluation_set.c.project_id, evaluation_set.c.item_id, evaluation_set.c.class_id))}
        classes = defaultdict(dict)
        for pid, cid, name in conn.execute(text("select project_id, class_id, name from classes")):
            classes[pid][cid] = name
        scored = []  # (project, item, predicted, true or None, {kind: value})
        for pid, mid in latest.items():
            for item_id, cls in conn.execute(select(predictions.c.item_id, predictions.c.class_id)
                                             .where(predictions.c.model_id == mid)):
                it = item_rows[item_id]
                attrs = it.attributes if isinstance(it.attributes, dict) else json.loads(it.attributes or "null") or {}
                groups = {"entity": it.entity if it.entity is not None else "(none)"}
                groups |= {k: (str(attrs[k]) if attrs.get(k) is not None else "(none)") for k in ATTRIBUTES}
                scored.append((pid, item_id, cls, truth.get((pid, item_id)), groups))
        rows = _mart(conn, "fairness_by_group")

    def ratio(a, b):
        return None if b == 0 else a / b

    def close(a, b):
        return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12))

    expected = {}
    for pid, mid in latest.items():
        mine = [s for s in scored if s[0] == pid]
        o_items, o_eval = len(mine), sum(s[3] is not None for s in mine)
        o_correct = sum(s[3] == s[2] for s in mine)
        for kind in ("entity", *ATTRIBUTES):
            for value in {s[4][kind] for s in mine}:
                g = [s for s in mine if s[4][kind] == value]
                g_eval, g_correct = sum(s[3] is not None for s in g), sum(s[3] == s[2] for s in g)
                for cid in classes[pid]:
                    support = sum(s[3] == cid for s in g)
                    tp = sum(s[3] == cid and s[2] == cid for s in g)
                    predicted = sum(s[2] == cid for s in g)
                    o_support = sum(s[3] == cid for s in mine)
                    o_tp = sum(s[3] == cid and s[2] == cid for s in mine)
                    o_pred = sum(s[2] == cid for s in mine)
                    acc, o_acc = ratio(g_correct, g_eval), ratio(o_correct, o_eval)
                    rec, o_rec = ratio(tp, support), ratio(o_tp, o_support)
                    rate, o_rate = ratio(predicted, len(g)), ratio(o_pred, o_items)
                    expected[(pid, kind, value, cid)] = {
                        "model_id": mid, "class_name": classes[pid][cid], "items": len(g), "eval_items": g_eval,
                        "support": support, "accuracy": acc, "overall_accuracy": o_acc,
                        "accuracy_gap": None if acc is None or o_acc is None else acc - o_acc,
                        "recall": rec, "overall_recall": o_rec,
                        "recall_gap": None if rec is None or o_rec is None else rec - o_rec,
                        "prediction_rate": rate, "overall_prediction_rate": o_rate,
                        "prediction_rate_gap": None if rate is None or o_rate is None else rate - o_rate}
    got = {(r["project_id"], r["group_kind"], r["group_value"], r["class_id"]): r for r in rows}
    assert len(rows) == len(got) == len(expected) > 50
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        row = got[key]
        assert row["fairness_key"] == "-".join(str(k) for k in key)
        for col, v in want.items():
            if isinstance(v, float) or v is None:
                assert close(row[col], v), (key, col, row[col], v)
            else:
                assert row[col] == v, (key, col, row[col], v)


def test_prediction_drift_counts_match_python(built):
    _url, engine, _root = built
    with engine.connect() as conn:
        latest = _latest_models(conn)
        preds = conn.execute(select(predictions.c.model_id, predictions.c.item_id, predictions.c.class_id)).all()
        captured = {i: at for i, at in conn.execute(select(items.c.item_id, items.c.captured_at))}
        rows = _mart(conn, "prediction_drift")
    per_model = Counter((m, c) for m, _i, c in preds)
    per_month = Counter()
    for pid, mid in latest.items():
        for m, i, c in preds:
            if m == mid and captured[i] is not None:
                per_month[(pid, str(captured[i])[:7], c)] += 1
    versions = [r for r in rows if r["comparison"] == "model_version"]
    months = [r for r in rows if r["comparison"] == "captured_month"]
    assert versions and months
    for r in versions:
        assert r["baseline_items"] == per_model[(r["baseline_model_id"], r["class_id"])]
        assert r["compared_items"] == per_model[(r["compared_model_id"], r["class_id"])]
    for r in months:
        assert r["baseline_items"] == per_month[(r["project_id"], r["baseline"], r["class_id"])]
        assert r["compared_items"] == per_month[(r["project_id"], r["compared"], r["class_id"])]
        total = sum(n for (p, mo, _c), n in per_month.items() if p == r["project_id"] and mo == r["compared"])
        assert math.isclose(r["compared_share"], r["compared_items"] / total)


def test_one_row_per_project_item_test_fails_on_a_duplicate_and_on_a_gap(built):
    url, engine, root = built
    name = "assert_item_index_one_row_per_project_item"
    key_test = "unique_item_index_project_item_key"

    def run(test: str = name) -> str:
        res = run_dbt(url, ["test", "--select", test], work_dir=root / "dbt")
        return {n.name: n.status for n in res.nodes}[test]

    assert run() == "pass"
    with engine.begin() as conn:
        first = conn.execute(text("select project_id, item_id from item_index order by project_id, item_id limit 1")).one()
        conn.execute(text("create table item_index_copy as select * from item_index"))
        conn.execute(text("insert into item_index select * from item_index where project_id = :p and item_id = :i"),
                     {"p": first.project_id, "i": first.item_id})
    assert run() == "fail"
    with engine.begin() as conn:
        conn.execute(text("delete from item_index where project_id = :p and item_id = :i"),
                     {"p": first.project_id, "i": first.item_id})
    assert run() == "fail"  # the pair is now missing
    with engine.begin() as conn:
        conn.execute(text("delete from item_index"))
        conn.execute(text("insert into item_index select * from item_index_copy"))
        conn.execute(text("update item_index set project_id = 9999 where rowid = (select min(rowid) from item_index)"))
    assert run() == "fail"  # a pair that is not a project x item
    with engine.begin() as conn:
        conn.execute(text("delete from item_index"))
        conn.execute(text("insert into item_index select * from item_index_copy"))
        conn.execute(text("update item_index set project_item_key = project_item_key || 'x' "
                          "where rowid = (select min(rowid) from item_index)"))
    assert run() == "fail"  # a key that is not its pair's
    with engine.begin() as conn:
        conn.execute(text("delete from item_index"))
        conn.execute(text("insert into item_index select * from item_index_copy"))
        last = conn.execute(text("select project_id, item_id from item_index order by project_id desc, item_id desc "
                                 "limit 1")).one()
        conn.execute(text("delete from item_index where project_id = :p and item_id = :i"),
                     {"p": last.project_id, "i": last.item_id})
        conn.execute(text("insert into item_index select * from item_index where project_id = :p and item_id = :i"),
                     {"p": first.project_id, "i": first.item_id})
    # One pair twice and another missing: as many rows as pairs, each a project x item
    # with its own key; the key's unique test is the one that fails.
    assert (run(), run(key_test)) == ("pass", "fail")
    with engine.begin() as conn:
        conn.execute(text("delete from item_index"))
        conn.execute(text("insert into item_index select * from item_index_copy"))
        conn.execute(text("drop table item_index_copy"))
    assert (run(), run(key_test)) == ("pass", "pass")
