"""Business event tables declared in alsql.toml and the business_events marts
(docs/analysts.md, "Your event tables, declared").

- A declaration ([business.NAME]) is checked key by key; a bad one fails in one line
  naming the section and key, before dbt runs.
- ``alsql marts build`` passes the declared tables to dbt; the events counted before,
  during and after each item on the same entity equal a Python reference, on SQLite and
  on PostgreSQL (the table in a schema ``gis`` of its own there), with the table's own
  windows and with the vars' windows (``--vars``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.config import set_settings
from alsql.db import make_engine
from alsql.errors import AlsqlError
from alsql.pipelines.business_events import event_table_specs, event_vars
from alsql.pipelines.marts import compile_offline
from business_events_data import ZONE_CLASSES, add_zones, reference_counts, write_accidents

runner = CliRunner()
GOOD = {"table": "accidents", "schema": "gis", "entity": "camera", "time": "occurred_at"}

DOC_EVENTS_SQL = re.findall(r"```sql events\n(.*?)```", (Path(__file__).parent.parent / "docs" / "analysts.md").read_text(), re.S)


def _invoke(args):
    try:
        return runner.invoke(app, args)
    finally:
        set_database("sqlite:///alsql.db")
        # that override read the test folder's alsql.toml: the next test reads its own folder's
        set_settings(None)


def test_declarations_are_checked_key_by_key():
    assert event_table_specs({}) == [] and event_vars(None) == {}
    specs = event_table_specs({"accidents": {**GOOD, "values": ["injuries"], "window_after_s": 30}})
    assert specs == [{"name": "accidents", **GOOD, "values": ["injuries"], "window_after_s": 30}]
    bad = [
        ({"accidents": {**GOOD, "table": 'x";drop table items;--'}}, r"\[business.accidents\] table = .*expected a name"),
        ({"accidents": {**GOOD, "entity": "camera id"}}, r"\[business.accidents\] entity = 'camera id': expected a name"),
        ({"accidents": {k: v for k, v in GOOD.items() if k != "time"}}, r"\[business.accidents\] time: missing"),
        ({"accidents": {**GOOD, "when": "x"}}, r"\[business.accidents\] when: unknown key; expected one of table"),
        ({"accidents": {**GOOD, "values": "injuries"}}, r"values = 'injuries': expected a list"),
        ({"accidents": {**GOOD, "values": ["a-b"]}}, r"\[business.accidents\] values = 'a-b': expected a name"),
        ({"accidents": {**GOOD, "window_after_s": -1}}, r"window_after_s = -1: expected a number of seconds"),
        ({"accidents": {**GOOD, "window_before_s": "30s"}}, r"window_before_s = '30s': expected a number"),
        ({"bad name": GOOD}, r"\[business.NAME\] NAME = 'bad name': expected a name"),
        ({"accidents": "gis.accidents"}, r"\[business.accidents\]: expected a table of keys"),
        ({f"t{i}": GOOD for i in range(9)}, r"9 tables declared; expected at most 8"),
    ]
    for business, message in bad:
        with pytest.raises(AlsqlError, match=message):
            event_table_specs(business)


def test_cli_refuses_a_bad_declaration_before_running_dbt(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alsql.toml").write_text('[business.accidents]\ntable = "accidents"\nentity = "cam era"\n'
                                         'time = "occurred_at"\n')
    result = _invoke(["--db", sqlite_url, "marts", "build", "--work-dir", str(tmp_path / "dbt")])
    assert isinstance(result.exception, AlsqlError)
    assert str(result.exception) == ("alsql.toml [business.accidents] entity = 'cam era': expected a name of "
                                     "letters, digits and _ starting with a letter or _ (at most 63 characters)")
    assert not (tmp_path / "dbt").exists()


def test_dbt_checks_the_var_too(tmp_path):
    """Running dbt yourself with --vars: the macro refuses what the Python check would."""
    result = compile_offline("postgresql://u@h/db", work_dir=tmp_path, extra_vars={
        "business_event_tables": [{**GOOD, "name": "accidents", "time": "occurred_at; drop table items"}]})
    assert not result.success
    assert "time = occurred_at; drop table items: expected a name" in (result.error or "")


def test_sqlserver_compiles_with_declared_tables(tmp_path):
    url = "mssql+pyodbc://alsql:secret@sql.example.invalid:1433/alsql?driver=ODBC+Driver+18+for+SQL+Server"
    result = compile_offline(url, work_dir=tmp_path, extra_vars=event_vars(
        {"accidents": {**GOOD, "values": ["injuries"]}, "claims": {"table": "c", "entity": "serial", "time": "t"}}))
    assert result.success, result.error
    sql = next((tmp_path / "target" / "compiled").rglob("stg_business_events.sql")).read_text()
    assert '"gis"."accidents"' in sql and 'cast("injuries" as' in sql and "datediff_big" in sql


def _toml(schema: str | None) -> str:
    where = f'schema = "{schema}"\n' if schema else ""
    return ('[business.accidents]\ntable = "zone_accidents"\n' + where
            + 'entity = "camera"\ntime = "occurred_at"\nvalues = ["injuries", "cost_usd"]\n'
            'window_before_s = 60\nwindow_after_s = 30\n\n'
            '[business.accidents_wide]\ntable = "zone_accidents"\n' + where + 'entity = "camera"\ntime = "occurred_at"\n')


@pytest.mark.slow
def test_events_within_the_window_equal_python(db_url, tmp_path, monkeypatch):
    """Does a worker entering the zone precede an accident within 30 s on the same camera?"""
    engine = make_engine(db_url)
    postgres = db_url.startswith("postgresql")
    try:
        zones = add_zones(engine)
        if postgres:
            with engine.begin() as conn:
                conn.execute(text("CREATE SCHEMA gis"))
        write_accidents(engine, zones, schema="gis" if postgres else None)
        monkeypatch.chdir(tmp_path)
        (tmp_path / "alsql.toml").write_text(_toml("gis" if postgres else None))
        result = _invoke(["--db", db_url, "marts", "build", "--select", "business_events_by_class",
                          "business_event_values", "--vars", "{window_before_s: 5, window_after_s: 120}",
                          "--work-dir", str(tmp_path / "dbt")])
        assert result.exit_code == 0, result.output
        marts = "marts." if postgres else ""
        with engine.connect() as conn:
            rows = conn.execute(text(
                f"select business_table, item_id, events_before, events_during, events_after, has_event_after, "
                f"predicted_class_id, label_class_id, window_before_s, window_after_s "
                f"from {marts}business_events")).all()
            values = {(r[0], r[1]): r[2] for r in conn.execute(text(
                f"select business_table, item_id, sum_after from {marts}business_event_values "
                f"where value_name = 'injuries'"))}
            by_class = {(r[0], r[1], r[2]): r[3:] for r in conn.execute(text(
                f"select business_table, basis, class_name, items, items_with_event_after, events_after "
                f"from {marts}business_events_by_class"))}
            if postgres:
                conn.execute(text("set search_path to marts, public"))
            doc_rows = [conn.execute(text(q)).all() for q in DOC_EVENTS_SQL[:2]]  # the guide's queries, as written
    finally:
        engine.dispose()
    assert len(rows) == 2 * len(zones.items)
    for table, (before, after) in {"accidents": (60, 30), "accidents_wide": (5, 120)}.items():
        ref = reference_counts(zones, before, after)
        got = {r[1]: r for r in rows if r[0] == table}
        assert {i: (r[2], r[3], r[4]) for i, r in got.items()} == {
            i: (c["before"], c["during"], c["after"]) for i, c in ref.items()}
        assert {(r[8], r[9]) for r in got.values()} == {(before, after)}
        assert sum(r[4] for r in got.values()) > 20 and sum(r[2] for r in got.values()) > 10  # not a vacuous check
        if table == "accidents":
            assert {i: v for (t, i), v in values.items() if t == table and v} == {
                i: c["injuries_after"] for i, c in ref.items() if c["injuries_after"]}
        for basis, key in (("predicted", "predicted"), ("label", "label")):
            followed = Counter(zones.items[i][key] for i in got if (ref[i]["during"] + ref[i]["after"]) > 0
                               and zones.items[i].get(key) is not None)
            counted = Counter(zones.items[i][key] for i in got if zones.items[i].get(key) is not None)
            for c, name in enumerate(ZONE_CLASSES):
                assert by_class[(table, basis, name)][:2] == (counted[c], followed[c])
    # The worker segments are followed by an accident within 30 s far more often.
    worker = by_class[("accidents", "label", "worker_in_zone")]
    normal = by_class[("accidents", "label", "normal")]
    assert worker[1] / worker[0] > 2 * normal[1] / normal[0]
    assert {(r[0], r[1]) for r in doc_rows[0]} >= {("label", "worker_in_zone"), ("predicted", "normal")} and doc_rows[1]


@pytest.mark.slow
def test_no_declared_table_builds_empty_marts(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no alsql.toml here
    engine = make_engine(sqlite_url)
    try:
        add_zones(engine)
        result = _invoke(["--db", sqlite_url, "marts", "build", "--select", "business_events_by_class",
                          "business_event_values", "--work-dir", str(tmp_path / "dbt")])
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            counts = [conn.execute(text(f"select count(*) from {t}")).scalar_one()
                      for t in ("stg_business_events", "business_events", "business_events_by_class",
                                "business_event_values")]
    finally:
        engine.dispose()
    assert counts == [0, 0, 0, 0]


@pytest.mark.slow
def test_answer_estimates_on_a_declared_table(db_url, tmp_path, monkeypatch):
    """accidents_after: the share of segments followed by an accident within 30 s, by true
    class, naive and classical equal to Python; every class compared with the normal
    classes pooled, (normal)."""
    engine = make_engine(db_url)
    postgres = db_url.startswith("postgresql")
    try:
        zones = add_zones(engine)
        write_accidents(engine, zones)
        monkeypatch.chdir(tmp_path)
        (tmp_path / "alsql.toml").write_text(_toml(None).split("\n\n")[0] + "\n")
        result = _invoke(["--db", db_url, "marts", "build", "--select", "answer_estimates", "answer_differences",
                          "--vars", "{normal_classes: [normal, forklift]}", "--work-dir", str(tmp_path / "dbt")])
        assert result.exit_code == 0, result.output
        marts = "marts." if postgres else ""
        with engine.connect() as conn:
            estimates = {(r[0], r[1]): r[2:] for r in conn.execute(text(
                f"select grp, estimator, estimate, ci_low, ci_high, n_labeled, n_unlabeled from {marts}answer_estimates "
                f"where mart = 'business_events' and estimand = 'accidents_after'"))}
            pairs = {(r[0], r[1]) for r in conn.execute(text(
                f"select group_a, group_b from {marts}answer_differences "
                f"where estimand = 'accidents_after' and estimator = 'ppi'"))}
    finally:
        engine.dispose()
    ref = reference_counts(zones, 60, 30)
    followed = {i: int(c["during"] + c["after"] > 0) for i, c in ref.items()}
    labeled = [i for i, m in zones.items.items() if m.get("evaluation")]
    for c, name in enumerate(ZONE_CLASSES):
        classical = sum(followed[i] for i in labeled if zones.items[i]["truth"] == c) / sum(
            1 for i in labeled if zones.items[i]["truth"] == c)
        naive = sum(followed[i] for i, m in zones.items.items() if m["predicted"] == c) / sum(
            1 for m in zones.items.values() if m["predicted"] == c)
        assert estimates[(name, "classical")][0] == pytest.approx(classical, abs=1e-9)
        assert estimates[(name, "naive")][0] == pytest.approx(naive, abs=1e-9)
        low, high = estimates[(name, "ppi")][1:3]
        assert low < estimates[(name, "ppi")][0] < high
        assert estimates[(name, "ppi")][3:] == (len(labeled), len(zones.items) - len(labeled))
    # (normal) pools the normal classes (here normal and forklift, by --vars)
    pooled = [i for i in labeled if zones.items[i]["truth"] != 1]
    assert estimates[("(normal)", "classical")][0] == pytest.approx(
        sum(followed[i] for i in pooled) / len(pooled), abs=1e-9)
    assert {("(normal)", "worker_in_zone"), ("(normal)", "forklift"), ("(normal)", "normal")} <= pairs
