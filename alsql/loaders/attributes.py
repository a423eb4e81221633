"""Per-file attributes from a CSV keyed by relative path.

Columns: ``path`` (required, relative to the ingested folder), optional ``entity``,
``captured_at`` (ISO 8601), ``latitude`` (-90..90), ``longitude`` (-180..180); every
other column goes into the item's ``attributes`` JSON. The whole file is checked
before anything is ingested.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alsql.errors import AlsqlError

__all__ = ["read_attributes", "parse_timestamp"]

_KNOWN = ("path", "entity", "captured_at", "latitude", "longitude")


def _coord(value: str, name: str, limit: float, where: str) -> float | None:
    if value == "":
        return None
    try:
        x = float(value)
    except ValueError:
        raise AlsqlError(f"{where}: {name} {value!r} is not a number") from None
    if not -limit <= x <= limit:
        raise AlsqlError(f"{where}: {name} {value!r} is outside [-{limit:g}, {limit:g}]")
    return x


def parse_timestamp(value: str, where: str, name: str) -> datetime | None:
    """An ISO 8601 date-time (UTC when no zone is given); '' is None."""
    if value == "":
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AlsqlError(f"{where}: {name} {value!r} is not an ISO 8601 date-time") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def read_attributes(csv_path: str | Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {entity, captured_at, latitude, longitude, attributes}}``."""
    path = Path(csv_path)
    if not path.is_file():
        raise AlsqlError(f"--attributes {str(csv_path)!r} is not a file (expected a CSV with a 'path' column)")
    out: dict[str, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise AlsqlError(
                f"--attributes {path.name}: expected a 'path' column, found {reader.fieldnames or 'no header'}"
            )
        extra = [c for c in reader.fieldnames if c not in _KNOWN]
        for n, rec in enumerate(reader, start=2):
            where = f"{path.name} row {n}"
            rel = (rec.get("path") or "").strip().replace("\\", "/").removeprefix("./")
            if not rel:
                raise AlsqlError(f"{where}: empty path")
            out[rel] = {
                "entity": (rec.get("entity") or "").strip() or None,
                "captured_at": parse_timestamp((rec.get("captured_at") or "").strip(), where, "captured_at"),
                "latitude": _coord((rec.get("latitude") or "").strip(), "latitude", 90, where),
                "longitude": _coord((rec.get("longitude") or "").strip(), "longitude", 180, where),
                "attributes": {c: rec[c] for c in extra if rec.get(c) not in (None, "")} or None,
            }
    return out
