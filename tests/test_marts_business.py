"""The join marts on the user's own business tables (docs/analysts.md).

- A business table is named with its schema (``--gis-accidents gis.accidents``), and on
  SQL Server with its database too.
- The marts keep no view over a business table, so it can be dropped or reloaded while
  they exist (PostgreSQL refuses to drop a table a view reads).
- A business table left unnamed: the packaged demo records join only the projects of var
  ``demo_projects``; for every other project the mart is empty, and the build warns.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import MetaData, Table, text
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.db import make_engine
from alsql.errors import AlsqlError
from alsql.pipelines.business import KINDS, business_vars, cli_vars, env_name, unset_warnings
from alsql.pipelines.marts import build, compile_offline
from alsql.pipelines.scenarios.tables import BUSINESS_COLUMNS, mart_vars, write_business_table
from marts_data import populate

runner = CliRunner()
MSSQL_URL = "mssql+pyodbc://alsql:secret@sql.example.invalid:1433/alsql?driver=ODBC+Driver+18+for+SQL+Server"
# Accidents at four of the traffic project's cameras (tests/marts_data.py: cam-011 .. cam-022).
ACCIDENTS = [{"accident_id": i, "camera_entity": f"cam-{11 + i % 4:03d}", "occurred_at": datetime(2024, 2, 1 + i, 9),
              "severity": "serious" if i % 5 == 0 else "minor", "injuries": i % 3, "latitude": 47.4,
              "longitude": 8.5} for i in range(1, 11)]


def _invoke(args):
    try:
        return runner.invoke(app, args)
    finally:
        set_database("sqlite:///alsql.db")


def _write(engine, name, rows, schema=None, kind="gis_accidents"):
    table = Table(name, MetaData(schema=schema), *BUSINESS_COLUMNS[kind]())
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        conn.execute(table.insert(), rows)


def test_business_table_names_are_checked():
    pg = "postgresql://u@h/db"
    assert business_vars(pg, {"gis_accidents": "gis.accidents"}, environ={}) == {"gis_accidents_table": "gis.accidents"}
    assert business_vars(pg, {}, environ={"ALSQL_MAINTENANCE_LOGS_TABLE": "cmms.log"}) == {
        "maintenance_logs_table": "cmms.log"}
    assert business_vars(MSSQL_URL, {"warranty_claims": "crm.dbo.claims"}, environ={}) == {
        "warranty_claims_table": "crm.dbo.claims"}
    for bad in ("crm.gis.accidents", "gis.", "a b", 'x";drop table items;--', "gis..t"):
        with pytest.raises(AlsqlError, match="--gis-accidents .*expected TABLE or SCHEMA.TABLE"):
            business_vars(pg, {"gis_accidents": bad}, environ={})
    with pytest.raises(AlsqlError, match="ALSQL_GIS_ACCIDENTS_TABLE"):
        business_vars(pg, {}, environ={"ALSQL_GIS_ACCIDENTS_TABLE": "a.b.c"})


def test_cli_refuses_a_bad_table_name_before_running_dbt(sqlite_url, tmp_path):
    result = _invoke(["--db", sqlite_url, "marts", "build", "--gis-accidents", "a.b.c",
                      "--work-dir", str(tmp_path / "dbt")])
    assert isinstance(result.exception, AlsqlError)  # the console script prints it as one line, exit 2
    assert "--gis-accidents 'a.b.c': expected TABLE or SCHEMA.TABLE" in str(result.exception)
    assert not (tmp_path / "dbt").exists()


def test_sqlserver_business_table_with_database_and_schema_compiles(tmp_path):
    compiled = compile_offline(MSSQL_URL, work_dir=tmp_path, extra_vars={"gis_accidents_table": "crm.gis.accidents"})
    assert compiled.success, compiled.error
    sql = next((tmp_path / "target" / "compiled").rglob("stg_gis_accidents.sql")).read_text()
    assert '"crm"."gis"."accidents"' in sql


@pytest.mark.postgres
@pytest.mark.slow
def test_business_table_in_a_schema_of_its_own_on_postgres(pg_url, tmp_path):
    engine = make_engine(pg_url)
    try:
        data = populate(engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA gis"))
        _write(engine, "accidents", ACCIDENTS, schema="gis")
        result = _invoke(["--db", pg_url, "marts", "build", "--select", "intersection_safety",
                          "--gis-accidents", "gis.accidents", "--work-dir", str(tmp_path / "dbt")])
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            got = conn.execute(text("select project_id, sum(accidents), sum(injuries) from marts.intersection_safety "
                                    "group by project_id")).all()
        assert [tuple(r) for r in got] == [(data.projects["traffic"], len(ACCIDENTS),
                                            sum(r["injuries"] for r in ACCIDENTS))]
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_business_table_reloads_while_the_marts_exist_on_postgres(pg_url, tmp_path):
    """The scenario's writer drops and recreates the user's table after a build; a plain
    DROP TABLE works too: no view of the marts keeps a dependency on it."""
    engine = make_engine(pg_url)
    variables = mart_vars("gis_accidents", "accidents")

    def accidents_in_mart():
        result = build(pg_url, ["intersection_safety"], work_dir=tmp_path / "dbt", extra_vars=variables)
        assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
        with engine.connect() as conn:
            return conn.execute(text("select sum(accidents) from marts.intersection_safety")).scalar_one()

    try:
        populate(engine)
        write_business_table(engine, "gis_accidents", "accidents", ACCIDENTS)
        assert accidents_in_mart() == len(ACCIDENTS)
        write_business_table(engine, "gis_accidents", "accidents", ACCIDENTS[:4])  # reloaded by its writer
        assert accidents_in_mart() == 4
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE accidents"))  # no CASCADE needed
        _write(engine, "accidents", ACCIDENTS[:7])
        assert accidents_in_mart() == 7
    finally:
        engine.dispose()


def test_vars_option_and_unset_warnings():
    assert cli_vars("{demo_projects: [traffic], maintenance_window_days: 14}") == {
        "demo_projects": ["traffic"], "maintenance_window_days": 14}
    for bad in ("[a, b]", "{a: [", "plain"):
        with pytest.raises(AlsqlError, match="--vars"):
            cli_vars(bad)
    lines = unset_warnings({"gis_accidents_table": "gis.a"}, ["intersection_safety", "defect_warranty"], environ={})
    assert len(lines) == 1 and lines[0].startswith("defect_warranty is empty: no warranty claims table is named")
    assert "--warranty-claims" in lines[0] and "ALSQL_WARRANTY_CLAIMS_TABLE" in lines[0]
    assert unset_warnings({}, ["defect_warranty"], environ={"ALSQL_WARRANTY_CLAIMS_TABLE": "c"}) == []
    assert "demo records of projects products only" in unset_warnings(
        {"demo_projects": ["products"]}, ["defect_warranty"], environ={})[0]


def _count(engine, mart):
    with engine.connect() as conn:
        return dict(conn.execute(text(f"select project_id, count(*) from {mart} group by project_id")).all())


@pytest.mark.sqlite
@pytest.mark.slow
def test_demo_records_join_only_demo_projects_and_unset_marts_warn(sqlite_url, tmp_path, monkeypatch):
    """The traffic project's cameras (cam-011 ..) are the demo accidents' cameras: they get
    none of them unless the project is named a demo project."""
    for kind in KINDS:
        monkeypatch.delenv(env_name(kind), raising=False)
    engine = make_engine(sqlite_url)
    data = populate(engine)
    joins = ["-s", "intersection_safety", "-s", "defect_warranty", "-s", "maintenance_risk"]
    try:
        plain = _invoke(["--db", sqlite_url, "marts", "build", *joins, "--work-dir", str(tmp_path / "dbt")])
        assert plain.exit_code == 0, plain.output
        out = " ".join(plain.output.split())
        for mart, option in (("intersection_safety", "--gis-accidents"), ("defect_warranty", "--warranty-claims"),
                             ("maintenance_risk", "--maintenance-logs")):
            assert _count(engine, mart) == {}, mart
            assert f"warning: {mart} is empty: no" in out and option in out
        some = _invoke(["--db", sqlite_url, "marts", "build", *joins, "--vars", "{demo_projects: [products, machines]}",
                        "--work-dir", str(tmp_path / "dbt")])
        assert some.exit_code == 0, some.output
        assert _count(engine, "intersection_safety") == {}  # traffic is not a demo project
        assert _count(engine, "defect_warranty") == {data.projects["products"]: 20}
        assert _count(engine, "maintenance_risk") == {data.projects["machines"]: 48}
        assert "intersection_safety holds the demo records of projects products, machines only" in " ".join(
            some.output.split())
    finally:
        engine.dispose()
