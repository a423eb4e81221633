"""alsql's pipeline as a Dagster code location: ``dagster dev -m alsql.orchestration``.

``defs`` (built on first access from ``alsql.toml`` / ``ALSQL_*``, see
``alsql.orchestration.config``) holds the assets ``items/<source>``, ``model``,
``predictions``, ``round``, the dbt marts, alsql's tables, the Great Expectations
checks and the sensors for the events ``alsql watch`` reacts to. Needs the
``dagster`` extra (``pip install alsql[dagster]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["defs", "build_definitions"]


def build_definitions(settings=None):
    """See ``alsql.orchestration.definitions.build_definitions``."""
    from alsql.orchestration.definitions import build_definitions as build

    return build(settings)


def __getattr__(name: str) -> Any:
    # Built lazily: importing a submodule must not parse the dbt project.
    if name == "defs":
        value = build_definitions()
        globals()["defs"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"defs"})
