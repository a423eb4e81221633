"""The analyst's own tables, written as plain SQL tables (not dbt seeds).

``write_business_table(engine, kind, name, rows)`` (re)creates table ``name`` in the
database's default schema with the columns the join marts expect for ``kind``
(``gis_accidents``, ``maintenance_logs`` or ``warranty_claims``, see
docs/analysts.md) and inserts ``rows`` in one transaction. ``mart_vars(kind, name)``
is the dbt var that points the marts at it. Only the fixed names the scenarios use
reach this module; no identifier comes from user text.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Column, DateTime, Engine, Float, Integer, MetaData, String, Table

from alsql.errors import AlsqlError

__all__ = ["BUSINESS_COLUMNS", "business_table", "write_business_table", "mart_vars"]

BUSINESS_COLUMNS = {
    "gis_accidents": lambda: [
        Column("accident_id", Integer, primary_key=True, autoincrement=False),
        Column("camera_entity", String(200), nullable=False),
        Column("occurred_at", DateTime, nullable=False),
        Column("severity", String(20), nullable=False),
        Column("injuries", Integer, nullable=False),
        Column("latitude", Float),
        Column("longitude", Float),
    ],
    "maintenance_logs": lambda: [
        Column("log_id", Integer, primary_key=True, autoincrement=False),
        Column("machine", String(200), nullable=False),
        Column("logged_at", DateTime, nullable=False),
        Column("event_type", String(20), nullable=False),
        Column("downtime_hours", Float),
        Column("cost_usd", Float),
    ],
    "warranty_claims": lambda: [
        Column("claim_id", Integer, primary_key=True, autoincrement=False),
        Column("serial", String(200), nullable=False),
        Column("claimed_at", DateTime, nullable=False),
        Column("failure_mode", String(200)),
        Column("cost_usd", Float, nullable=False),
    ],
}


def business_table(kind: str, name: str) -> Table:
    if kind not in BUSINESS_COLUMNS:
        raise AlsqlError(f"business table kind {kind!r}: expected one of {', '.join(BUSINESS_COLUMNS)}")
    return Table(name, MetaData(), *BUSINESS_COLUMNS[kind]())


def write_business_table(engine: Engine, kind: str, name: str, rows: Iterable[dict]) -> int:
    """Drop and recreate ``name`` as a ``kind`` table holding ``rows``; returns the row count."""
    table = business_table(kind, name)
    rows = list(rows)
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        if rows:
            conn.execute(table.insert(), rows)
    return len(rows)


def mart_vars(kind: str, name: str) -> dict[str, str]:
    """The dbt var that makes the join marts read table ``name`` for ``kind``."""
    return {f"{kind}_table": name}
