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
