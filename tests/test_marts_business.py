"""The join marts on the user's own business tables (docs/analysts.md).

- A business table is named with its schema (``--gis-accidents gis.accidents``), and on
  SQL Server with its database too.
- The marts keep no view over a business table, so it can be dropped or reloaded while
  they exist (PostgreSQL refuses to drop a table a view reads).
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
from alsql.pipelines.business import business_vars
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
