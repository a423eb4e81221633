"""Per-file attributes from a CSV keyed by relative path.

Columns: ``path`` (required, relative to the ingested folder), optional ``entity``,
``captured_at`` (ISO 8601), ``latitude`` (-90..90), ``longitude`` (-180..180); every
other column goes into the item's ``attributes`` JSON. The whole file is checked
before anything is ingested.

Memory stays flat whatever the CSV's size: the checked rows go to a private temporary
SQLite database (on disk, deleted when closed) keyed by path, and :class:`AttributeTable`
reads one path's row at a time.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import threading
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alsql.errors import AlsqlError

__all__ = ["AttributeTable", "read_attributes", "parse_timestamp"]

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


class AttributeTable(MutableMapping):
    """``{relative path: {entity, captured_at, latitude, longitude, attributes}}`` on disk.

    A mapping backed by a private temporary SQLite database (SQLite deletes it when the
    table is closed or collected); a later row for the same path replaces the earlier
    one, as in a dict. Safe to share between threads (one lock around the connection).
    """

    _COLS = ("entity", "captured_at", "latitude", "longitude", "attributes")

    def __init__(self) -> None:
        # "" opens a private on-disk temporary database: pages spill to disk, not to RAM.
        self._db = sqlite3.connect("", check_same_thread=False)
        self._db.execute("PRAGMA cache_size = -8192")  # 8 MiB of page cache at most
        self._db.execute("CREATE TABLE attrs (path TEXT PRIMARY KEY, entity TEXT, captured_at TEXT,"
                         " latitude REAL, longitude REAL, attributes TEXT) WITHOUT ROWID")
        self._lock = threading.Lock()

    @staticmethod
    def _row(rel: str, v: dict[str, Any]) -> tuple:
        t = v.get("captured_at")
        a = v.get("attributes")
        return (rel, v.get("entity"), t.isoformat() if t is not None else None, v.get("latitude"),
                v.get("longitude"), json.dumps(a) if a is not None else None)

    def put_many(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Store ``(path, values)`` pairs; later pairs replace earlier ones for the same path."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO attrs VALUES (?, ?, ?, ?, ?, ?)",
                                 [self._row(rel, v) for rel, v in rows])

    def __setitem__(self, rel: str, values: dict[str, Any]) -> None:
        self.put_many([(rel, values)])

    def __getitem__(self, rel: str) -> dict[str, Any]:
        with self._lock:
            r = self._db.execute("SELECT entity, captured_at, latitude, longitude, attributes FROM attrs"
                                 " WHERE path = ?", (rel,)).fetchone()
        if r is None:
            raise KeyError(rel)
        return {"entity": r[0], "captured_at": datetime.fromisoformat(r[1]) if r[1] is not None else None,
                "latitude": r[2], "longitude": r[3], "attributes": json.loads(r[4]) if r[4] is not None else None}

    def __delitem__(self, rel: str) -> None:
        with self._lock, self._db:
            if self._db.execute("DELETE FROM attrs WHERE path = ?", (rel,)).rowcount == 0:
                raise KeyError(rel)

    def __contains__(self, rel: object) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM attrs WHERE path = ?", (rel,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM attrs").fetchone()[0]

    def __iter__(self) -> Iterator[str]:
        """Paths in order, a page at a time (keyset pages: flat memory)."""
        last = None
        while True:
            with self._lock:
                page = self._db.execute("SELECT path FROM attrs WHERE ? IS NULL OR path > ? ORDER BY path"
                                        " LIMIT 1000", (last, last)).fetchall()
            if not page:
                return
            yield from (p for (p,) in page)
            last = page[-1][0]

    def close(self) -> None:
        """Delete the temporary database."""
        self._db.close()


def read_attributes(csv_path: str | Path, batch: int = 5_000) -> AttributeTable:
    """Check the whole CSV and return its rows as an :class:`AttributeTable` (close it when done).

    Raises :class:`AlsqlError` naming the file and row at the first bad value; nothing is
    kept then.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise AlsqlError(f"--attributes {str(csv_path)!r} is not a file (expected a CSV with a 'path' column)")
    out = AttributeTable()
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise AlsqlError(
                    f"--attributes {path.name}: expected a 'path' column, found {reader.fieldnames or 'no header'}"
                )
            extra = [c for c in reader.fieldnames if c not in _KNOWN]
            pending: list[tuple[str, dict[str, Any]]] = []
            for n, rec in enumerate(reader, start=2):
                where = f"{path.name} row {n}"
                rel = (rec.get("path") or "").strip().replace("\\", "/").removeprefix("./")
                if not rel:
                    raise AlsqlError(f"{where}: empty path")
                pending.append((rel, {
                    "entity": (rec.get("entity") or "").strip() or None,
                    "captured_at": parse_timestamp((rec.get("captured_at") or "").strip(), where, "captured_at"),
                    "latitude": _coord((rec.get("latitude") or "").strip(), "latitude", 90, where),
                    "longitude": _coord((rec.get("longitude") or "").strip(), "longitude", 180, where),
                    "attributes": {c: rec[c] for c in extra if rec.get(c) not in (None, "")} or None,
                }))
                if len(pending) >= batch:
                    out.put_many(pending)
                    pending = []
            out.put_many(pending)
    except BaseException:
        out.close()
        raise
    return out
