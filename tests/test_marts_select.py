"""``alsql marts build --select X`` on a database where the full build never ran.

Each mart reads staging views, seeds and (some of them) ``item_index`` or
``int_prediction_cells``; the selection must build what it reads. One demo-size dataset
per backend is populated once; every test starts from it with no dbt object in the
database (a copy of the SQLite file; the PostgreSQL ``marts`` schema dropped).
"""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from alsql.cli import app
from alsql.cli.common import set_database
from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.pipelines.marts import with_parents
from conftest import _fresh_pg_database
from marts_data import populate

MARTS = ("item_index", "label_progress", "model_performance", "prediction_drift", "fairness_by_group",
         "intersection_safety", "defect_warranty", "maintenance_risk")
runner = CliRunner()
# The populated projects are the demo projects the packaged demo records join.
DEMO = ["--vars", "{demo_projects: [traffic, products, machines]}"]


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("marts_select") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    populate(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def pg_populated(pg_admin_url):
    url, drop = _fresh_pg_database(pg_admin_url)
    upgrade(url)
    engine = make_engine(url)
    populate(engine)
    yield url, engine
    engine.dispose()
    drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path):
    """A populated database with no staging view, seed or mart in it."""
    if request.param == "sqlite":
        path = tmp_path / "alsql.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url, engine = request.getfixturevalue("pg_populated")
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS marts CASCADE"))
    return url


def test_with_parents_keeps_explicit_graph_operators():
    assert with_parents(["item_index", "item_index+", "+item_index+", "+x", "2+x", "@x", "a,b", "tag:t", "x+1"]) == [
        "+item_index", "@item_index", "@item_index", "+x", "2+x", "@x", "a,b", "+tag:t", "x+1"]


@pytest.mark.slow
@pytest.mark.parametrize("mart", MARTS)
def test_select_one_mart_on_fresh_database(fresh_url, mart, tmp_path):
    try:
        result = runner.invoke(app, ["--db", fresh_url, "marts", "build", "--select", mart, *DEMO,
                                     "--work-dir", str(tmp_path / "dbt")])
        assert result.exit_code == 0, result.output
        assert "no such table" not in result.output and "does not exist" not in result.output
    finally:
        set_database("sqlite:///alsql.db")
    engine = make_engine(fresh_url)
    schema = "marts." if fresh_url.startswith("postgresql") else ""
    try:
        with engine.connect() as conn:
            built = conn.execute(text(f"select count(*) from {schema}{mart}")).scalar_one()
    finally:
        engine.dispose()
    assert built > 0


@pytest.mark.slow
def test_select_mart_and_its_children_on_fresh_database(fresh_url, tmp_path):
    """``item_index+`` (docs/analysts.md): the mart built on item_index (maintenance_risk)
    needs its own inputs too (stg_maintenance_logs, the seed), which are not upstream of
    item_index; ``int_prediction_cells+`` builds the marts that share its one pass over
    the predictions, with their own inputs (the claims and accidents seeds)."""
    try:
        for selection in ("item_index+", "int_prediction_cells+"):
            result = runner.invoke(app, ["--db", fresh_url, "marts", "build", "--select", selection, *DEMO,
                                         "--work-dir", str(tmp_path / "dbt")])
            assert result.exit_code == 0, result.output
    finally:
        set_database("sqlite:///alsql.db")
    engine = make_engine(fresh_url)
    schema = "marts." if fresh_url.startswith("postgresql") else ""
    try:
        with engine.connect() as conn:
            for mart in ("item_index", "maintenance_risk", "fairness_by_group", "prediction_drift",
                         "defect_warranty", "intersection_safety"):
                assert conn.execute(text(f"select count(*) from {schema}{mart}")).scalar_one() > 0, mart
    finally:
        engine.dispose()


@pytest.mark.slow
def test_model_performance_leaves_out_pretrained_encoders(fresh_url, tmp_path):
    """An encoder from ``alsql pretrain`` (status 'encoder') is not a model version of the mart."""
    from sqlalchemy import insert, select

    from alsql.schema import model_versions

    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            project_id = conn.execute(select(model_versions.c.project_id).limit(1)).scalar_one()
            encoder_id = conn.execute(insert(model_versions).values(
                project_id=project_id, architecture="cnn+simclr", params={}, metrics={}, status="encoder",
            ).returning(model_versions.c.model_id)).scalar_one()
            classifiers = conn.execute(select(model_versions.c.model_id).where(
                model_versions.c.status != "encoder")).scalars().all()
        try:
            result = runner.invoke(app, ["--db", fresh_url, "marts", "build", "--select", "model_performance", *DEMO,
                                         "--work-dir", str(tmp_path / "dbt")])
            assert result.exit_code == 0, result.output
        finally:
            set_database("sqlite:///alsql.db")
        schema = "marts." if fresh_url.startswith("postgresql") else ""
        with engine.connect() as conn:
            listed = set(conn.execute(text(f"select distinct model_id from {schema}model_performance")).scalars())
    finally:
        engine.dispose()
    assert encoder_id not in listed
    assert listed and listed <= set(classifiers)


@pytest.mark.slow
@pytest.mark.sqlite
def test_one_select_takes_several_nodes_as_dbt_does(sqlite_template, tmp_path):
    """``--select a b`` (dbt's spelling) selects both, as does ``--select 'a b'``; nothing else is built."""
    path = tmp_path / "alsql.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    try:
        result = runner.invoke(app, ["--db", url, "marts", "build", "--select", "label_progress", "model_performance",
                                     "--work-dir", str(tmp_path / "dbt")])
        assert result.exit_code == 0, result.output
        spaced = runner.invoke(app, ["--db", url, "marts", "build", "-s", "stg_rounds stg_classes",
                                     "--work-dir", str(tmp_path / "dbt")])
        assert spaced.exit_code == 0, spaced.output
    finally:
        set_database("sqlite:///alsql.db")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(conn.execute(text("select name from sqlite_master")).scalars())
            assert conn.execute(text("select count(*) from label_progress")).scalar_one() > 0
            assert conn.execute(text("select count(*) from model_performance")).scalar_one() > 0
    finally:
        engine.dispose()
    assert {"stg_rounds", "stg_classes"} <= tables
    assert not {"item_index", "prediction_drift", "intersection_safety"} & tables
