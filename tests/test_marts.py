"""The dbt marts: one `dbt build` per backend over the same populated data.

SQLite and PostgreSQL each get one session-scoped build (models, seeds and every
data test); their marts must agree row for row. SQL Server has no server here:
`dbt parse` and an offline compile check the T-SQL. Mart figures are checked
against what Python computes from the raw rows and the seed CSVs.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.db import make_engine
from alsql.errors import AlsqlError
from alsql.migrations import upgrade
from alsql.pipelines.marts import PROJECT_DIR, build, compile_offline, profile_target, run_dbt
from alsql.schema import annotations, evaluation_set, predictions
from conftest import _fresh_pg_database
from marts_data import machine_image, populate

MARTS = ("item_index", "label_progress", "model_performance", "prediction_drift", "fairness_by_group",
         "intersection_safety", "defect_warranty", "maintenance_risk")
KEYS = {"item_index": "project_item_key", "label_progress": "progress_key", "model_performance": "model_class_key",
        "prediction_drift": "drift_key", "fairness_by_group": "fairness_key", "intersection_safety": "intersection_key",
        "defect_warranty": "product_key", "maintenance_risk": "project_item_key"}
MSSQL_URL = "mssql+pyodbc://alsql:secret@sql.example.invalid:1433/alsql?driver=ODBC+Driver+18+for+SQL+Server"
runner = CliRunner()
ANALYST_SQL = re.findall(r"```sql\n(.*?)```", (Path(__file__).parent.parent / "docs" / "analysts.md").read_text(), re.S)


# The populated projects are the demo projects the packaged demo records join.
DEMO = {"demo_projects": ["traffic", "products", "machines"]}


def _built(url, work_dir):
    engine = make_engine(url)
    data = populate(engine)
    result = build(url, work_dir=work_dir, extra_vars=DEMO)
    return url, engine, data, result


@pytest.fixture(scope="session")
def sqlite_marts(tmp_path_factory):
    root = tmp_path_factory.mktemp("marts_sqlite")
    url = f"sqlite:///{root / 'alsql.db'}"
    upgrade(url)
    built = _built(url, root / "dbt")
    yield built
    built[1].dispose()


@pytest.fixture(scope="session")
def pg_marts(pg_admin_url, tmp_path_factory):
    url, drop = _fresh_pg_database(pg_admin_url)
    upgrade(url)
    built = _built(url, tmp_path_factory.mktemp("marts_pg") / "dbt")
    yield built
    built[1].dispose()
    drop()


def _rows(engine, table, schema=None):
    name = f"{schema}.{table}" if schema else table
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"select * from {name} order by {KEYS[table]}"))]


def _assert_built(result):
    assert result.success, (result.error, [(n.name, n.status, n.message) for n in result.failed])
    by_type = Counter(n.resource_type for n in result.nodes)
    # every model of the project is built
    assert by_type["model"] == len(list((Path(PROJECT_DIR) / "models").rglob("*.sql"))) and by_type["seed"] == 3
    assert by_type["test"] >= 100  # every key and relationship of every model and seed
    statuses = {n.name: n.status for n in result.nodes}
    for mart in MARTS:
        assert statuses[mart] == "success"
    assert statuses["assert_item_index_one_row_per_project_item"] == "pass"
    assert not result.failed


@pytest.mark.sqlite
@pytest.mark.slow
def test_build_sqlite_marts_match_the_raw_data(sqlite_marts):
    url, engine, data, result = sqlite_marts
    _assert_built(result)
    index = _rows(engine, "item_index")
    n_items = sum(len(v) for v in data.items.values())
    assert len(index) == len(data.projects) * n_items
    with engine.connect() as conn:
        latest = {p: m[-1] for p, m in data.models.items()}
        preds = {(r.model_id, r.item_id): r for r in conn.execute(select(predictions))}
        evals = conn.execute(select(evaluation_set.c.project_id, evaluation_set.c.item_id,
                                    evaluation_set.c.class_id)).all()
        n_labels = conn.execute(select(annotations.c.annotation_id)).all()
    for row in index:
        kind = next(k for k, pid in data.projects.items() if pid == row["project_id"])
        p = preds.get((latest[kind], row["item_id"]))
        assert row["latest_model_id"] == latest[kind]
        assert row["predicted_class_id"] == (p.class_id if p else None)
        if p:
            assert row["predicted_label"] == data.classes[kind][p.class_id]
    # label_progress counts every annotation once.
    assert sum(r["labels"] for r in _rows(engine, "label_progress")) == len(n_labels)
    # model_performance: accuracy on the evaluation set, per model.
    perf = _rows(engine, "model_performance")
    for kind, models in data.models.items():
        truth = {i: c for pid, i, c in evals if pid == data.projects[kind]}
        for mid in models:
            acc = sum(preds[(mid, i)].class_id == c for i, c in truth.items()) / len(truth)
            got = {r["accuracy"] for r in perf if r["model_id"] == mid}
            assert len(got) == 1 and math.isclose(got.pop(), acc)
            recall = [r["class_recall"] for r in perf if r["model_id"] == mid and r["support"]]
            assert all(0 <= x <= 1 for x in recall)
    # prediction_drift: the per-class PSI terms add up to the total, which is >= 0.
    drift = _rows(engine, "prediction_drift")
    totals = defaultdict(float)
    for r in drift:
        totals[(r["comparison"], r["project_id"], r["baseline"], r["compared"])] += r["psi"]
    assert {c for c, *_ in totals} == {"model_version", "captured_month"}
    for r in drift:
        assert math.isclose(r["psi_total"], totals[(r["comparison"], r["project_id"], r["baseline"], r["compared"])])
        assert r["psi"] >= 0


@pytest.mark.sqlite
@pytest.mark.slow
def test_worked_joins_agree_with_the_seed_files(sqlite_marts):
    url, engine, data, result = sqlite_marts
    seeds = PROJECT_DIR / "seeds"
    with (seeds / "demo_gis_accidents.csv").open() as fh:
        accidents = Counter(r["camera_entity"] for r in csv.DictReader(fh))
    with (seeds / "demo_warranty_claims.csv").open() as fh:
        claims = list(csv.DictReader(fh))
    with (seeds / "demo_maintenance_logs.csv").open() as fh:
        failures = [r for r in csv.DictReader(fh) if r["event_type"] == "failure"]
    cams = {e for e in accidents if e.startswith("cam-") and 11 <= int(e[4:]) <= 22}
    safety = _rows(engine, "intersection_safety")
    assert {r["project_id"] for r in safety} == {data.projects["traffic"]}
    assert sum(r["cameras"] for r in safety) == 12
    assert sum(r["accidents"] for r in safety) == sum(accidents[c] for c in cams)
    warranty = _rows(engine, "defect_warranty")
    assert {r["project_id"] for r in warranty} == {data.projects["products"]}
    assert len(warranty) == 20
    served = {r["serial"] for r in warranty}
    assert math.isclose(sum(r["claim_cost_usd"] for r in warranty),
                        sum(float(c["cost_usd"]) for c in claims if c["serial"] in served))
    risk = _rows(engine, "maintenance_risk")
    assert {r["project_id"] for r in risk} == {data.projects["machines"]} and len(risk) == 48
    for r in risk:
        m = int(r["machine"][-2:])
        captured = datetime.fromisoformat(r["captured_at"])
        after = [datetime.fromisoformat(f["logged_at"]) for f in failures if f["machine"] == r["machine"]]
        hits = sorted(t for t in after if captured < t <= captured + timedelta(days=30))
        assert r["failures_in_window"] == len(hits), r
        if hits:
            assert math.isclose(r["days_to_failure"], (hits[0] - captured).total_seconds() / 86400, abs_tol=1e-6)
        assert any(machine_image(m, k)[0].replace(tzinfo=None) == captured for k in range(6))


@pytest.mark.postgres
@pytest.mark.slow
def test_build_postgres_matches_sqlite(pg_marts, sqlite_marts):
    url, engine, data, result = pg_marts
    _assert_built(result)
    lite = sqlite_marts[1]
    for mart in MARTS:
        pg_rows, lite_rows = _rows(engine, mart, "marts"), _rows(lite, mart)
        assert len(pg_rows) == len(lite_rows) > 0, mart
        for a, b in zip(pg_rows, lite_rows):
            assert a.keys() == b.keys(), mart
            for col in a:
                x, y = a[col], b[col]
                if x is None or y is None:
                    assert x is None and y is None, (mart, col, a, b)
                elif isinstance(x, (int, float)) or hasattr(x, "as_integer_ratio"):
                    assert math.isclose(float(x), float(y), rel_tol=1e-6, abs_tol=1e-9), (mart, col, x, y)
                elif isinstance(x, datetime) or hasattr(x, "isoformat"):
                    assert str(x)[:19] == str(y)[:19], (mart, col, x, y)
                else:
                    assert str(x) == str(y), (mart, col, x, y)


def _answers(engine, search_path=None):
    """Each example query of docs/analysts.md, run as written; its rows."""
    with engine.connect() as conn:
        if search_path:
            conn.execute(text(f"set search_path to {search_path}"))
        return [conn.execute(text(q)).all() for q in ANALYST_SQL]


@pytest.mark.sqlite
@pytest.mark.slow
def test_analyst_questions_answer_on_sqlite(sqlite_marts):
    assert len(ANALYST_SQL) == 5
    safety, per_camera, warranty, by_confidence, maintenance = _answers(sqlite_marts[1])
    assert [r[0] for r in safety] and all(r[1] > 0 for r in safety)
    assert {r[0] for r in per_camera} <= {f"cam-{n:03d}" for n in range(11, 23)} and per_camera
    assert sorted(r[0] for r in warranty) == [0, 1] and sorted(r[0] for r in maintenance) == [0, 1]
    assert by_confidence


@pytest.mark.postgres
@pytest.mark.slow
def test_analyst_questions_agree_on_postgres(pg_marts, sqlite_marts):
    pg, lite = _answers(pg_marts[1], "marts, public"), _answers(sqlite_marts[1])
    for got, want in zip(pg, lite):
        norm = lambda rows: sorted(tuple(round(float(v), 6) if isinstance(v, (int, float)) or hasattr(v, "as_integer_ratio")
                                         else v for v in r) for r in rows)
        assert norm(got) == norm(want)


def test_sqlserver_parse_and_offline_compile(tmp_path):
    """No server: dbt parses and renders every node to T-SQL without connecting."""
    parsed = run_dbt(MSSQL_URL, ["parse"], work_dir=tmp_path)
    assert parsed.success, parsed.error
    compiled = compile_offline(MSSQL_URL, work_dir=tmp_path)
    assert compiled.success, compiled.error
    assert {n.name for n in compiled.nodes} >= set(MARTS)
    out = tmp_path / "target" / "compiled" / "alsql" / "models"
    sql = {p.stem: p.read_text() for p in out.rglob("*.sql")}
    assert set(MARTS) <= set(sql)
    everything = "\n".join(sql.values())
    # SQL Server spellings from the dispatch macros, none of the other backends'.
    assert "json_value(i.attributes, '$.lighting')" in sql["int_prediction_cells"]
    assert "log(c_share / b_share)" in sql["prediction_drift"]
    assert "switchoffset(captured_at, '+00:00')" in sql["stg_items"]
    assert "convert(char(7)" in sql["int_prediction_cells"]
    assert "cast(sum(items) as int)" in sql["intersection_safety"]  # sums of counts typed as count(*) is
    for other in ("json_extract", "julianday", "strftime", "->>", "datetime(", " || ", "to_char("):
        assert other not in everything, other
    assert '"dbo"."items"' in sql["stg_items"]


def test_profiles_from_urls(tmp_path):
    db = tmp_path / "a.db"
    db.touch()
    lite = profile_target(f"sqlite:///{db}")
    assert lite["type"] == "sqlite" and lite["schemas_and_paths"] == {"main": str(db.resolve())}
    pg = profile_target("postgresql://ann:pw@db.internal:5433/labels")
    assert (pg["type"], pg["host"], pg["port"], pg["user"], pg["password"], pg["dbname"], pg["schema"]) == (
        "postgres", "db.internal", 5433, "ann", "pw", "labels", "marts")
    # An engine's URL object (as the pipeline steps pass it) keeps its password.
    assert profile_target(make_url("postgresql://ann:pw@db.internal/labels"))["password"] == "pw"
    ms = profile_target(MSSQL_URL + "&TrustServerCertificate=yes")
    assert (ms["type"], ms["server"], ms["database"], ms["user"], ms["trust_cert"], ms["driver"]) == (
        "sqlserver", "sql.example.invalid", "alsql", "alsql", True, "ODBC Driver 18 for SQL Server")
    with pytest.raises(AlsqlError, match="in-memory"):
        profile_target("sqlite://")
    with pytest.raises(AlsqlError, match="no such SQLite file"):
        profile_target(f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(AlsqlError, match="mysql"):
        profile_target("mysql://u@h/db")


@pytest.mark.sqlite
@pytest.mark.slow
def test_cli_build_select_docs_and_failure(sqlite_marts, tmp_path):
    url = sqlite_marts[0]
    try:
        ok = runner.invoke(app, ["--db", url, "marts", "build", "--select", "item_index",
                                 "--work-dir", str(tmp_path / "dbt")])
        assert ok.exit_code == 0, ok.output
        assert "item_index" in ok.output and "success" in ok.output
        assert "defect_warranty" not in ok.output  # only the selection ran
        docs = runner.invoke(app, ["--db", url, "marts", "docs", "--work-dir", str(tmp_path / "dbt")])
        assert docs.exit_code == 0, docs.output
        catalog = (tmp_path / "dbt" / "target" / "catalog.json").read_text()
        assert "model.alsql.item_index" in catalog and (tmp_path / "dbt" / "target" / "index.html").is_file()
        # A database whose evaluation_set view is gone: the build fails and says which node.
        broken = tmp_path / "broken.db"
        upgrade(f"sqlite:///{broken}")
        eng = create_engine(f"sqlite:///{broken}")
        with eng.begin() as conn:
            conn.exec_driver_sql("DROP VIEW evaluation_set")
        eng.dispose()
        bad = runner.invoke(app, ["--db", f"sqlite:///{broken}", "marts", "build", "--select", "stg_evaluation_set",
                                  "--work-dir", str(tmp_path / "dbt-broken")])
        assert bad.exit_code == 1, bad.output
        assert "stg_evaluation_set" in bad.output and "error" in bad.output
    finally:
        set_database("sqlite:///alsql.db")
