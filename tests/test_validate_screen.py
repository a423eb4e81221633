"""`alsql validate` screens each suite with one SQL aggregate; Great Expectations only
sees the expectations that have a failing row, and reports the same failures."""

from __future__ import annotations

import pytest

import alsql.pipelines.validate as v
from alsql.pipelines.validate import SUITES, validate
from marts_data import populate
from test_validate import _plant_bad_rows


@pytest.mark.slow
def test_clean_data_needs_no_expectation_run_and_planted_rows_only_theirs(engine, db_url, monkeypatch):
    data = populate(engine)
    sent: list[tuple[str, list[str]]] = []
    run_ge = v._run_ge

    def spy(context, gx, asset, name, expectations, *rest):
        sent.append((name, [e.configuration.type for e in expectations]))
        return run_ge(context, gx, asset, name, expectations, *rest)

    monkeypatch.setattr(v, "_run_ge", spy)
    clean = validate(db_url)
    assert clean.success and sent == []  # one aggregate per suite decided every expectation
    assert [c.suite for c in clean.checks] == ["items"] * 5 + ["annotations"] + ["predictions"] * 4
    assert all(c.element_count > 0 and c.unexpected_count == 0 for c in clean.checks)

    _plant_bad_rows(engine, data)
    report = validate(db_url)
    assert sorted(sent) == [("annotations", ["expect_column_values_to_not_be_null"]),
                            ("predictions", ["expect_column_values_to_be_between",
                                             "expect_column_pair_values_to_be_equal"])]
    assert sorted((c.suite, c.column, c.unexpected_count) for c in report.failures) == [
        ("annotations", "class_name", 1),
        ("predictions", "confidence", 1),
        ("predictions", "probs_bytes = expected_probs_bytes", 1),
    ]
    assert len(report.checks) == 10 and {c.suite for c in report.checks} == set(SUITES)
    # The screen counts what Great Expectations counts, expectation by expectation.
    monkeypatch.setattr(v, "_failing", lambda e, t: v.literal(1))  # send every expectation through
    full = validate(db_url)
    assert [(c.suite, c.column, c.success, c.unexpected_count, c.element_count) for c in full.checks] == [
        (c.suite, c.column, c.success, c.unexpected_count, c.element_count) for c in report.checks]


def test_screen_counts_each_kind_of_failure():
    """Duplicates, values out of set / range, NULLs and unequal pairs, NULLs skipped as GE skips them."""
    import great_expectations as gx
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

    E = gx.expectations
    t = Table("t", MetaData(), Column("u", String), Column("s", String), Column("w", Integer),
              Column("a", Integer), Column("b", Integer))
    engine = create_engine("sqlite://")
    t.create(engine)
    rows = [("x", "ok", 1, 1, 1), ("x", "bad", 0, 1, 2), ("y", None, None, None, None), (None, "ok", 5, None, 3),
            (None, "ok", 2, 4, 4)]
    with engine.begin() as conn:
        conn.execute(insert(t), [dict(zip("uswab", r)) for r in rows])
        total, bad = v.screen(conn, t, [
            E.ExpectColumnValuesToBeUnique(column="u"),
            E.ExpectColumnValuesToBeInSet(column="s", value_set=["ok"]),
            E.ExpectColumnValuesToBeBetween(column="w", min_value=0, strict_min=True),
            E.ExpectColumnValuesToBeBetween(column="w", min_value=1, max_value=2),
            E.ExpectColumnValuesToNotBeNull(column="s"),
            E.ExpectColumnPairValuesToBeEqual(column_A="a", column_B="b"),
        ])
    assert (total, bad) == (5, [1, 1, 1, 2, 1, 2])
