"""`alsql validate`: Great Expectations suites inside the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.dialects import mssql
from typer.testing import CliRunner

from alsql.annotate import insert_annotations
from alsql.cli import app
from alsql.cli.common import set_database
from alsql.pipelines.validate import predictions_query, validate
from alsql.schema import classes, items, predictions
from marts_data import populate

runner = CliRunner()


def _plant_bad_rows(engine, data) -> dict:
    """A confidence of 1.7, a label whose class belongs to another project, probs one class short."""
    traffic, machines = data.projects["traffic"], data.projects["machines"]
    with engine.connect() as conn:
        # class 3 exists in 'traffic' (four classes) but not in 'machines' (two).
        assert conn.execute(select(classes.c.name).where(classes.c.project_id == traffic,
                                                         classes.c.class_id == 3)).scalar_one()
        assert conn.execute(select(classes.c.name).where(classes.c.project_id == machines,
                                                         classes.c.class_id == 3)).first() is None
    bad_model, bad_item = data.models["products"][1], data.items["products"][4]
    short_model, short_item = data.models["traffic"][0], data.items["traffic"][7]
    label_item = data.items["machines"][2]
    with engine.connect() as conn:
        # The foreign key (project_id, class_id) -> classes would refuse the label: switch it off
        # for this connection, as a careless bulk load or a restore without constraints would.
        if conn.dialect.name == "sqlite":  # outside any transaction, where SQLite honours it
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            [annotation_id] = insert_annotations(conn, [{"project_id": machines, "item_id": label_item,
                                                        "class_id": 3, "annotator": "mallory"}])
            conn.execute(update(predictions).where(predictions.c.model_id == bad_model,
                                                   predictions.c.item_id == bad_item).values(confidence=1.7))
            conn.execute(update(predictions).where(predictions.c.model_id == short_model,
                                                   predictions.c.item_id == short_item)
                         .values(probs=np.full(3, 1 / 3, np.float16).tobytes()))
        if conn.dialect.name == "sqlite":
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    return {"annotation_id": annotation_id, "label_item": label_item, "bad": (bad_model, bad_item),
            "short": (short_model, short_item)}


@pytest.mark.slow
def test_validate_passes_on_clean_data_and_names_planted_rows(engine, db_url):
    data = populate(engine)
    clean = validate(db_url)
    assert clean.success, clean.failures
    assert {c.suite for c in clean.checks} == {"items", "annotations", "predictions"}
    assert all(c.element_count > 0 for c in clean.checks)

    planted = _plant_bad_rows(engine, data)
    try:
        result = runner.invoke(app, ["--db", db_url, "validate"])
    finally:
        set_database("sqlite:///alsql.db")
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    bad_model, bad_item = planted["bad"]
    assert (f"predictions: expect_column_values_to_be_between on confidence: 1 of" in out)
    assert f'"model_id": {bad_model}, "item_id": {bad_item}, "confidence": 1.7' in out
    assert "annotations: expect_column_values_to_not_be_null on class_name: 1 of" in out
    assert f'"annotation_id": {planted["annotation_id"]}, "project_id": {data.projects["machines"]}' in out
    short_model, short_item = planted["short"]
    assert "predictions: expect_column_pair_values_to_be_equal on probs_bytes = expected_probs_bytes: 1 of" in out
    assert f'"model_id": {short_model}, "item_id": {short_item}' in out
    # Exactly the three planted problems, nothing else.
    report = validate(db_url)
    assert sorted((c.suite, c.column, c.unexpected_count) for c in report.failures) == [
        ("annotations", "class_name", 1),
        ("predictions", "confidence", 1),
        ("predictions", "probs_bytes = expected_probs_bytes", 1),
    ]


def test_validate_flags_bad_items(engine, db_url):
    """A width of 0 is caught and named by its item id."""
    rows = [{"uri": f"file:///x/{i}.png", "sha256": f"{i:064d}", "width": w, "height": 5,
                       "status": "ok"} for i, w in enumerate((4, 0, 7))]
    with engine.begin() as conn:
        ids = list(conn.execute(insert(items).returning(items.c.item_id, sort_by_parameter_order=True),
                                rows).scalars())
    report = validate(db_url, suites=("items",))
    [failure] = report.failures
    assert (failure.column, failure.unexpected_count, failure.element_count) == ("width", 1, 3)
    assert failure.samples == [{"item_id": ids[1], "width": 0}]


def test_probs_length_query_is_tsql():
    sql = str(predictions_query(mssql.dialect()).compile(dialect=mssql.dialect()))
    assert "datalength(predictions.probs)" in sql.lower()


def test_validate_refuses_unknown_suite(sqlite_url):
    try:
        result = runner.invoke(app, ["--db", sqlite_url, "validate", "--suite", "nope"])
    finally:
        set_database("sqlite:///alsql.db")
    assert result.exit_code != 0
