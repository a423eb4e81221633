"""Business event tables declared in ``alsql.toml``, for the ``business_events`` marts.

A declaration names one of the analyst's tables of timed events on an entity::

    [business.accidents]
    table = "accidents"           # the table's name (required)
    schema = "gis"                # its schema (else var business_schema, else alsql's schema)
    entity = "camera_entity"      # the column holding the entity (items.entity) (required)
    time = "occurred_at"          # the column holding the event's time, UTC (required)
    values = ["injuries"]         # numeric columns summed within the windows (optional)
    window_before_s = 60          # seconds before an item counted (else var window_before_s)
    window_after_s = 30           # seconds after an item counted (else var window_after_s)

:func:`event_table_specs` checks every declaration and returns the list of table specs
that ``alsql marts build`` passes to dbt as the var ``business_event_tables`` (the
macro ``business_event_specs`` checks it again, for users who run dbt themselves).
Every name is an identifier of letters, digits and ``_`` starting with a letter or
``_``: dbt quotes it as a relation or column name, and no SQL text of the user's ever
reaches a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from alsql.errors import AlsqlError

__all__ = ["MAX_TABLES", "MAX_VALUES", "MAX_WINDOW_S", "VAR", "event_table_specs", "event_vars"]

VAR = "business_event_tables"
# Sources are declared as fixed slots (business_event_1 .. _8) in the dbt project.
MAX_TABLES = 8
MAX_VALUES = 8
MAX_WINDOW_S = 366 * 86400
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_NAME_HINT = "a name of letters, digits and _ starting with a letter or _ (at most 63 characters)"
_REQUIRED = ("table", "entity", "time")
_KEYS = (*_REQUIRED, "schema", "values", "window_before_s", "window_after_s")


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise AlsqlError(f"{where} = {value!r}: expected {_NAME_HINT}")
    return value


def _window(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_WINDOW_S:
        raise AlsqlError(f"{where} = {value!r}: expected a number of seconds from 0 to {MAX_WINDOW_S} (366 days)")
    return int(value) if float(value).is_integer() else float(value)


def _spec(name: str, entry: Any) -> dict[str, Any]:
    where = f"alsql.toml [business.{name}]"
    if not isinstance(entry, Mapping):
        raise AlsqlError(f"{where}: expected a table of keys ({', '.join(_KEYS)}), got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise AlsqlError(f"{where} {unknown[0]}: unknown key; expected one of {', '.join(_KEYS)}")
    for key in _REQUIRED:
        if key not in entry:
            raise AlsqlError(f"{where} {key}: missing; expected {_NAME_HINT}")
    spec: dict[str, Any] = {"name": name}
    for key in ("table", "schema", "entity", "time"):
        if key in entry:
            spec[key] = _name(entry[key], f"{where} {key}")
    values = entry.get("values", [])
    if not isinstance(values, list) or len(values) > MAX_VALUES:
        raise AlsqlError(f"{where} values = {values!r}: expected a list of at most {MAX_VALUES} column names")
    spec["values"] = [_name(v, f"{where} values") for v in values]
    if len(set(spec["values"])) != len(spec["values"]):
        raise AlsqlError(f"{where} values = {values!r}: expected each column once")
    for key in ("window_before_s", "window_after_s"):
        if key in entry:
            spec[key] = _window(entry[key], f"{where} {key}")
    return spec


def event_table_specs(business: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The checked table specs of ``[business.NAME]`` sections (``business``: the parsed
    ``[business]`` table of alsql.toml), in the order declared; raises :class:`AlsqlError`
    naming the section and key at the first bad one."""
    if not business:
        return []
    if not isinstance(business, Mapping):
        raise AlsqlError(f"alsql.toml [business]: expected sections [business.NAME], got {type(business).__name__}")
    if len(business) > MAX_TABLES:
        raise AlsqlError(f"alsql.toml [business]: {len(business)} tables declared; expected at most {MAX_TABLES}")
    specs = []
    for name, entry in business.items():
        _name(name, "alsql.toml [business.NAME] NAME")
        specs.append(_spec(name, entry))
    return specs


def event_vars(business: Mapping[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """The dbt var for the declared tables: ``{business_event_tables: [...]}`` (empty when none)."""
    specs = event_table_specs(business)
    return {VAR: specs} if specs else {}
