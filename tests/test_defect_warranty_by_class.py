"""defect_warranty_by_class: which defect leads to claims, class by class (docs/analysts.md).

Per project x basis (the latest model's prediction, the label of record) x class: the
serials with an image of the class, those with a claim, their claims and cost, equal
to a Python reference computed from alsql's raw tables and the claims, on SQLite and
PostgreSQL; every class has its rows, and defect_warranty keeps its grain.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import pytest
from sqlalchemy import text

from alsql.db import make_engine
from alsql.pipelines.marts import build
from alsql.pipelines.scenarios.tables import mart_vars, write_business_table
from marts_data import PRODUCT_CLASSES, SERIALS, populate

# Claims on every third serial (two on every sixth), and one on a serial without images.
CLAIMS = [{"claim_id": k, "serial": f"SN-{n:06d}", "claimed_at": datetime(2024, 5, 1 + k % 20), "failure_mode": "crack",
           "cost_usd": 10.0 * n + k}
          for k, n in enumerate([n for n in SERIALS if n % 3 == 0] + [n for n in SERIALS if n % 6 == 0] + [999], 1)]


def _reference(conn, project_id: int, model_id: int) -> dict[tuple[str, str], tuple]:
    entity = dict(conn.execute(text("select item_id, entity from items")).all())
    names = dict(conn.execute(text("select class_id, name from classes where project_id = :p"), {"p": project_id}).all())
    per_basis = {
        "predicted": conn.execute(text("select item_id, class_id from predictions where model_id = :m"),
                                  {"m": model_id}).all(),
        "label": conn.execute(text("select item_id, class_id from current_labels where project_id = :p"),
                              {"p": project_id}).all(),
    }
    claims, cost = defaultdict(int), defaultdict(float)
    for c in CLAIMS:
        claims[c["serial"]] += 1
        cost[c["serial"]] += c["cost_usd"]
    out = {}
    for basis, rows in per_basis.items():
        serials, images = defaultdict(set), defaultdict(int)
        for item, cls in rows:
            serials[cls].add(entity[item])
            images[cls] += 1
        for cls, name in names.items():
            s = serials[cls]
            out[(basis, name)] = (len(s), images[cls], sum(1 for e in s if claims[e]), sum(claims[e] for e in s),
                                  round(sum(cost[e] for e in s), 6))
    return out


@pytest.mark.slow
def test_claims_by_class_equal_python(db_url, tmp_path):
    engine = make_engine(db_url)
    marts = "marts." if db_url.startswith("postgresql") else ""
    try:
        data = populate(engine)
        write_business_table(engine, "warranty_claims", "claims", CLAIMS)
        result = build(db_url, ["defect_warranty_by_class", "answer_estimates"], work_dir=tmp_path / "dbt",
                       extra_vars=mart_vars("warranty_claims", "claims"))
        assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
        with engine.connect() as conn:
            pid = data.projects["products"]
            got = {(r[0], r[1]): (r[2], r[3], r[4], r[5], round(r[6], 6)) for r in conn.execute(text(
                f"select basis, class_name, serials, images, serials_with_claim, claims, claim_cost_usd "
                f"from {marts}defect_warranty_by_class where project_id = :p"), {"p": pid})}
            projects = conn.execute(text(f"select distinct project_id from {marts}defect_warranty_by_class")).all()
            grain = conn.execute(text(f"select count(*), count(distinct serial) from {marts}defect_warranty")).one()
            expected = _reference(conn, pid, data.models["products"][1])
            classical = dict(conn.execute(text(
                f"select grp, estimate from {marts}answer_estimates where project_id = :p "
                f"and estimand = 'claim_rate_by_class' and estimator = 'classical'"), {"p": pid}).all())
            evaluation = conn.execute(text("select e.class_id, i.entity from evaluation_set as e "
                                           "join items as i on i.item_id = e.item_id where e.project_id = :p"),
                                      {"p": pid}).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in projects] == [(pid,)]
    assert set(got) == {(b, c) for b in ("predicted", "label") for c in PRODUCT_CLASSES}
    assert got == expected
    assert got[("label", "dent")][2] > 0 and got[("label", "scratch")][0] > 0  # not a vacuous check
    assert grain[0] == grain[1] == len(SERIALS)  # defect_warranty: still one row per serial
    # claim_rate_by_class (answer_estimates, classical): evaluation images, each serial's
    # claim shared among its 2 images, by the image's true class
    claimed = {c["serial"] for c in CLAIMS}
    for c, name in enumerate(PRODUCT_CLASSES):
        mine = [e for cls, e in evaluation if cls == c]
        if len(mine) >= 2:
            assert classical[name] == pytest.approx(sum(e in claimed for e in mine) / len(mine), abs=1e-9)
    assert len(classical) >= 2
