"""The join marts read the user's own table, named by a dbt var or an environment variable.

A plain SQL table written by ``write_business_table`` (not a dbt seed) is what the
staging model reads once ``gis_accidents_table`` (or ``ALSQL_GIS_ACCIDENTS_TABLE``)
names it; the demo seed is then not loaded, so a table of the user's is never replaced.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import inspect, text

from alsql.db import make_engine
from alsql.errors import AlsqlError
from alsql.migrations import upgrade
from alsql.pipelines.marts import run_dbt
from alsql.pipelines.scenarios.tables import mart_vars, write_business_table

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]

ROWS = [{"accident_id": i, "camera_entity": f"cam-{i % 3:03d}", "occurred_at": datetime(2024, 1, 1 + i, 8),
         "severity": "minor", "injuries": i % 2, "latitude": 47.4, "longitude": 8.5} for i in range(1, 8)]


def _staged(url, work, **kw):
    result = run_dbt(url, ["build", "--select", "stg_gis_accidents", "--indirect-selection", "cautious"],
                     work_dir=work, **kw)
    assert result.success, (result.error, [(n.name, n.message) for n in result.failed])
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("select accident_id, entity, injuries from stg_gis_accidents order by 1")).all()
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    return rows, tables


def test_var_and_environment_point_the_staging_model_at_the_users_table(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'alsql.db'}"
    upgrade(url)
    engine = make_engine(url)
    assert write_business_table(engine, "gis_accidents", "accidents_2024", ROWS) == len(ROWS)
    engine.dispose()
    want = [(r["accident_id"], r["camera_entity"], r["injuries"]) for r in ROWS]
    rows, tables = _staged(url, tmp_path / "dbt", extra_vars=mart_vars("gis_accidents", "accidents_2024"))
    assert [tuple(r) for r in rows] == want
    assert "demo_gis_accidents" not in tables and "accidents_2024" in tables
    monkeypatch.setenv("ALSQL_GIS_ACCIDENTS_TABLE", "accidents_2024")
    rows, _ = _staged(url, tmp_path / "dbt")
    assert [tuple(r) for r in rows] == want
    # Written again: the user's table is replaced whole, never appended to.
    engine = make_engine(url)
    write_business_table(engine, "gis_accidents", "accidents_2024", ROWS[:2])
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from accidents_2024")).scalar_one() == 2
    with pytest.raises(AlsqlError, match="gis_accidents, maintenance_logs, warranty_claims"):
        write_business_table(engine, "weather", "w", [])
    engine.dispose()
