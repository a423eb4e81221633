"""``alsql answer`` on SQLite and PostgreSQL: its JSON carries the answer marts' rows as
they are, the sentence says what the PPI difference says, the halving advice matches a
hand computation from the stored standard error, the marts are rebuilt only when they
must be (another level), and each refusal is one line with exit code 2."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import text

from alsql.pipelines.answer import DIFFERENCE_COLUMNS, ESTIMATE_COLUMNS, KNOWN_MARTS
from alsql.pipelines.answer_text import labels_to_halve, sentence
from tests.answer_support import DEMO_VARS, answered, run_main  # noqa: F401 - the fixture

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]


def _mart_rows(a, table: str, columns: tuple[str, ...], project: str, mart: str) -> list[dict]:
    schema = "" if a.engine.dialect.name == "sqlite" else "marts."
    with a.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            text(f"select {', '.join(columns)} from {schema}{table} where project_name = :p and mart = :m"),
            {"p": project, "m": mart})]


def _same(got: list[dict], want: list[dict], key: tuple[str, ...]) -> None:
    assert len(got) == len(want) > 0
    by = {tuple(r[k] for k in key): r for r in want}
    for row in got:
        ref = by[tuple(row[k] for k in key)]
        assert set(row) == set(ref)
        for col, v in ref.items():
            if isinstance(v, float) or isinstance(row[col], float):
                assert v is not None and row[col] is not None and math.isclose(row[col], v, rel_tol=1e-12,
                                                                                 abs_tol=1e-15), (col, row, ref)
            else:
                assert row[col] == v, (col, row[col], v)


def test_json_rows_are_the_mart_rows(answered):
    a = answered
    doc = a.first
    assert "building the answer marts (the answer marts are not built)" in a.first_err
    assert doc["project"] == "machines" and doc["mart"] == "maintenance_risk" and doc["level"] == 0.95
    assert doc["marts"][0] == "maintenance_risk" and {"item_index", "fairness_by_group"} <= set(doc["marts"])
    [e] = doc["estimands"]
    assert e["estimand"] == "failure_rate" and e["groups"] == ["abnormal", "normal"] and e["problem"] is None
    _same(e["estimates"], _mart_rows(a, "answer_estimates", ESTIMATE_COLUMNS, "machines", "maintenance_risk"),
          ("grp", "estimator"))
    _same(e["differences"], _mart_rows(a, "answer_differences", DIFFERENCE_COLUMNS, "machines", "maintenance_risk"),
          ("group_a", "group_b", "estimator"))
    assert [r["estimator"] for r in e["estimates"]] == ["naive", "classical", "ppi"] * 2


def test_sentence_follows_the_ppi_difference(answered):
    e = answered.first["estimands"][0]
    [ppi] = [d for d in e["differences"] if d["estimator"] == "ppi"]
    assert e["answer"] == ppi
    lead = "abnormal" if ppi["difference"] > 0 else "normal"
    counts = f"from {ppi['n_labeled']} evaluation labels and {ppi['n_labeled'] + ppi['n_unlabeled']} predictions"
    assert e["sentence"].endswith(counts)
    if ppi["ci_low"] <= 0 <= ppi["ci_high"]:
        assert e["sentence"].startswith(f"no clear difference between {lead} and ")
    else:
        assert e["sentence"].startswith(f"{lead} is followed by a failure within the window more often than ")
    assert f"difference {abs(ppi['difference']):.2f}, 95% CI " in e["sentence"]


def test_sentence_words_and_numbers():
    row = {"group_a": "abnormal", "group_b": "normal", "difference": 0.31, "ci_low": 0.19, "ci_high": 0.43,
           "p_value": 0.0004, "level": 0.95, "n_labeled": 300, "n_unlabeled": 12100}
    assert sentence("failure_rate", "share of clips followed by a failure, by the clip's true condition", row) == (
        "abnormal is followed by a failure within the window more often than normal: difference 0.31, "
        "95% CI 0.19-0.43, p < 0.001, from 300 evaluation labels and 12,400 predictions")
    flipped = row | {"group_a": "defective", "group_b": "sound", "difference": -0.31, "ci_low": -0.43,
                     "ci_high": -0.19, "p_value": 0.031}
    assert sentence("claim_rate", "share of serials with a claim", flipped).startswith(
        "sound serials get a warranty claim more often than defective serials: difference 0.31, 95% CI 0.19-0.43, "
        "p = 0.03,")
    unclear = row | {"difference": 0.05, "ci_low": -0.02, "ci_high": 0.12, "p_value": 0.17, "level": 0.9}
    assert sentence("accuracy_by_site", "share of items the model predicts right, by site", unclear) == (
        "no clear difference between abnormal and normal in share of items the model predicts right: difference "
        "0.05, 90% CI -0.02 to 0.12, p = 0.17, from 300 evaluation labels and 12,400 predictions")


def _hand_halving(r: dict) -> int | None:
    """n' from rectifier_var / n' + imputed_var / N = std_error^2 / 4 (the stored std_error)."""
    room = r["std_error"] ** 2 / 4 - r["imputed_var"] / r["n_unlabeled"]
    if room <= 0:
        return None
    return max(0, math.ceil(r["rectifier_var"] / room - r["n_labeled"] - 1e-6))


def test_halving_advice_matches_a_hand_computation(answered):
    rows = [r for r in answered.first["estimands"][0]["estimates"] if r["estimator"] == "ppi"]
    advice = {h["grp"]: h["more_labels"] for h in answered.first["estimands"][0]["halving"]}
    assert advice == {r["grp"]: _hand_halving(r) for r in rows}
    # a large project: 300 labels, 12,100 more predictions; the advice is the smallest n that halves
    r = {"rectifier_var": 0.25, "imputed_var": 0.1, "n_labeled": 300, "n_unlabeled": 12100, "estimate": 0.4}
    more = labels_to_halve(r)
    se2 = 0.25 / 300 + 0.1 / 12100
    assert more == 937
    assert 0.25 / (300 + more) + 0.1 / 12100 <= se2 / 4 < 0.25 / (300 + more - 1) + 0.1 / 12100
    assert labels_to_halve(r | {"imputed_var": 300.0}) is None  # the predictions' part alone is over a quarter


def test_another_level_rebuilds_and_the_same_level_does_not(answered, capsys):
    a = answered
    args = ["--db", a.url, "answer", "--project", "machines", "--json", "--work-dir", str(a.work_dir)]
    code, out, err = run_main(capsys, *args)
    assert code in (0, None) and "building" not in err and json.loads(out) == a.first
    code, out, err = run_main(capsys, *args, "--level", "0.8")
    assert code in (0, None), err
    assert "they are at level 0.95, not 0.8" in err
    doc = json.loads(out)
    assert doc["level"] == 0.8 and doc["mart"] == "maintenance_risk"  # the last build's vars were kept
    narrow = {(r["grp"], r["estimator"]): r for r in doc["estimands"][0]["estimates"]}
    for r in a.first["estimands"][0]["estimates"]:
        n = narrow[(r["grp"], r["estimator"])]
        assert math.isclose(n["estimate"], r["estimate"], rel_tol=1e-12)
        if r["std_error"] > 1e-9:
            assert n["ci_high"] - n["ci_low"] < r["ci_high"] - r["ci_low"]
    code, out, err = run_main(capsys, *args, "--level", "0.95")
    assert code in (0, None) and "building" in err
    again = json.loads(out)["estimands"][0]
    _same(again["estimates"], a.first["estimands"][0]["estimates"], ("grp", "estimator"))
    assert again["sentence"] == a.first["estimands"][0]["sentence"]
    code, out, err = run_main(capsys, "--db", a.url, "answer", "--project", "machines", "--work-dir",
                              str(a.work_dir))
    assert code in (0, None) and "failure_rate" in out and "95% CI" in out
    assert answered.first["estimands"][0]["sentence"] in " ".join(out.split())


def _refused(capsys, a, *argv) -> str:
    code, out, err = run_main(capsys, "--db", a.url, "answer", "--work-dir", str(a.work_dir), *argv)
    lines = [x for x in (out + err).splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, out + err
    return lines[0]


def test_refusals_are_one_line(answered, capsys):
    a = answered
    line = _refused(capsys, a, "--project", "unlabeled")
    assert line == "error: project unlabeled: no evaluation labels yet: run alsql select --purpose evaluation"
    with a.engine.connect() as conn:
        model = conn.execute(text("select model_id from model_versions where project_id = :p"),
                             {"p": a.projects["unpredicted"]}).scalar_one()
    line = _refused(capsys, a, "--project", "unpredicted")
    assert line == f"error: project unpredicted: model {model} has no predictions: run alsql infer"
    line = _refused(capsys, a, "--project", "sparse")
    assert line == ("error: project sparse, maintenance_risk failure_rate: group abnormal has 1 evaluation label, "
                    "needs at least 2")
    line = _refused(capsys, a, "--project", "machines", "--mart", "accidents")
    schema = "" if a.engine.dialect.name == "sqlite" else "marts."
    with a.engine.connect() as conn:
        built = set(conn.execute(text(f"select distinct mart from {schema}answer_estimates")).scalars())
    assert {"maintenance_risk", "item_index"} <= built
    assert line == f"error: --mart 'accidents': unknown mart; known marts: {', '.join(sorted(built | set(KNOWN_MARTS)))}"
    line = _refused(capsys, a, "--project", "machines", "--mart", "intersection_safety")
    assert line.startswith("error: project machines: the answer marts hold no estimates of intersection_safety")
    assert "--level 1.5: expected a number between 0 and 1" in _refused(capsys, a, "--project", "machines",
                                                                         "--level", "1.5")


def test_a_newer_model_without_predictions_is_named(answered, capsys):
    """The answer is the latest model's that predicted; a newer ready one is named with what to run."""
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from alsql.db import write_transaction
    from alsql.schema import model_versions

    a = answered
    with write_transaction(a.engine) as conn:
        newer = conn.execute(insert(model_versions).values(
            project_id=a.projects["products"], name="products-v9", architecture="smallcnn", label_count=0,
            status="ready", created_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
            .returning(model_versions.c.model_id)).scalar_one()
    code, out, err = run_main(capsys, "--db", a.url, "answer", "--project", "products", "--json", "--work-dir",
                              str(a.work_dir))
    assert code in (0, None), err
    doc = json.loads(out)
    assert doc["mart"] == "defect_warranty" and doc["estimands"][0]["estimand"] == "claim_rate"
    assert doc["notes"] == [f"model {newer} has no predictions: run alsql infer; this answer is model "
                            f"{doc['model_id']}'s"]


def test_sentence_of_a_business_event_estimand():
    row = {"group_a": "worker_in_zone", "group_b": "(normal)", "difference": 0.2, "ci_low": 0.1, "ci_high": 0.3,
           "p_value": 0.2e-4, "level": 0.95, "n_labeled": 2, "n_unlabeled": 0}
    assert sentence("accidents_after", "share of items an accidents event follows", row) == (
        "worker_in_zone items are followed by an event of accidents within the window more often than (normal) items: "
        "difference 0.20, 95% CI 0.10-0.30, p < 0.001, from 2 evaluation labels and 2 predictions")
