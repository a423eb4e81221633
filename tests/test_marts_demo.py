"""dbt marts and validation over data made by the demo loop (SQLite and PostgreSQL).

The demo writes scikit-learn's digits, ingests them, holds out an evaluation round and
runs two short active-learning rounds; then ``dbt build`` (models and tests) and
``alsql validate`` must pass on what it left behind.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from alsql.db import make_engine
from alsql.migrations import upgrade
from alsql.pipelines.demo import run_demo
from alsql.pipelines.marts import build
from alsql.pipelines.validate import validate
from alsql.schema import items, model_versions, projects


def _demo_then_marts(url, tmp_path, schema_prefix):
    upgrade(url)
    engine = make_engine(url)
    try:
        rows = run_demo(engine, tmp_path / "digits", rounds=2, budget=20, first_budget=30, eval_budget=100,
                        map_path=tmp_path / "map.png", curve_path=None, pretrain_steps=0, say=lambda _msg: None)
        assert len(rows) == 2 and rows[-1].labels == 50
        assert (tmp_path / "map.png").stat().st_size > 0
        result = build(url, work_dir=tmp_path / "dbt")
        assert result.success, (result.error, [(n.name, n.status, n.message) for n in result.failed])
        statuses = {n.name: n.status for n in result.nodes}
        assert statuses["assert_item_index_one_row_per_project_item"] == "pass"
        report = validate(url)
        assert report.success, [str(c) for c in report.failures]
        with engine.connect() as conn:
            n_items = conn.execute(select(func.count()).select_from(items)).scalar_one()
            n_projects = conn.execute(select(func.count()).select_from(projects)).scalar_one()
            n_models = conn.execute(select(func.count()).select_from(model_versions)).scalar_one()
            index_rows = conn.execute(text(f"select count(*) from {schema_prefix}item_index")).scalar_one()
            labeled, oracle, held_out = conn.execute(
                text(f"select sum(is_labeled), sum(case when label_source = 'oracle' then 1 else 0 end), "
                     f"sum(in_evaluation_set) from {schema_prefix}item_index")
            ).one()
            perf_models = conn.execute(
                text(f"select count(distinct model_id) from {schema_prefix}model_performance")
            ).scalar_one()
        assert n_items == 1797 and n_projects == 2 and n_models == 4
        assert index_rows == n_items * n_projects  # one row per project x item
        assert labeled == oracle == 2 * (100 + 50)  # evaluation hold-out plus two rounds, per project
        assert held_out == 2 * 100
        assert perf_models == n_models
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.sqlite
def test_marts_over_the_demo_loop_sqlite(tmp_path):
    _demo_then_marts(f"sqlite:///{tmp_path / 'demo.db'}", tmp_path, "")


@pytest.mark.slow
@pytest.mark.postgres
def test_marts_over_the_demo_loop_postgres(empty_pg_url, tmp_path):
    _demo_then_marts(empty_pg_url, tmp_path, "marts.")
