"""A ``MERGE`` statement (SQL Server / Azure SQL upsert), compiled for the mssql dialect.

``Merge(target, source, keys)`` renders
``MERGE target WITH (HOLDLOCK) AS t USING source AS s ON t.k = s.k AND ...
WHEN MATCHED THEN UPDATE SET ... WHEN NOT MATCHED THEN INSERT (...) VALUES (...);``
with every identifier quoted by the dialect (identifiers come from Table objects).
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["Merge"]


class Merge(Executable, ClauseElement):
    """Upsert every row of ``source`` into ``target`` on ``keys``."""

    inherit_cache = False

    def __init__(self, target: Table, source: Table, keys: tuple[str, ...]) -> None:
        self.target, self.source, self.keys = target, source, tuple(keys)


@compiles(Merge, "mssql")
def _merge_mssql(element: Merge, compiler, **kw) -> str:
    q = compiler.preparer.quote
    names = [c.name for c in element.target.columns]
    rest = [n for n in names if n not in element.keys]
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in element.keys)
    sets = ", ".join(f"{q(n)} = s.{q(n)}" for n in rest)
    cols = ", ".join(q(n) for n in names)
    vals = ", ".join(f"s.{q(n)}" for n in names)
    return (
        f"MERGE {compiler.preparer.format_table(element.target)} WITH (HOLDLOCK) AS t "
        f"USING {compiler.preparer.format_table(element.source)} AS s ON {on} "
        f"WHEN MATCHED THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({vals});"
    )


@compiles(Merge)
def _merge_other(element: Merge, compiler, **kw) -> str:
    raise NotImplementedError(f"MERGE is compiled for SQL Server only, not {compiler.dialect.name}")
