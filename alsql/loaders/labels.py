"""Label import (CSV, validated whole before anything is written) and export.

Import columns: one of ``item_id``, ``uri`` or ``path`` (resolved against ``root``,
default the current folder), ``label`` (a class name), optional ``annotator`` and
``created_at`` (ISO 8601). Every row is checked first; an unknown class or item is
refused with its row number, the value and the project's classes, and nothing is
written. Valid files go in as one transaction.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select

from alsql.annotate import insert_annotations
from alsql.catalog import Project, get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.attributes import parse_timestamp
from alsql.loaders.stores import path_to_uri
from alsql.schema import classes, current_labels, items

__all__ = ["ImportReport", "import_labels", "export_labels", "MAX_ERRORS_SHOWN"]

MAX_ERRORS_SHOWN = 20
_CHUNK = 500


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    dry_run: bool = False
    per_class: dict[str, int] = field(default_factory=dict)


def _resolve_items(engine: Engine, key: str, values: list[Any]) -> dict[Any, int]:
    col = items.c.item_id if key == "item_id" else items.c.uri
    found: dict[Any, int] = {}
    uniq = list(dict.fromkeys(values))
    with engine.connect() as conn:
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i : i + _CHUNK]
            for k, item_id in conn.execute(select(col, items.c.item_id).where(col.in_(part))):
                found[k] = item_id
    return found


def import_labels(
    engine: Engine,
    csv_path: str | Path,
    project: str | int,
    *,
    dry_run: bool = False,
    root: str | Path | None = None,
    source: str = "import",
    annotator: str | None = None,
) -> ImportReport:
    """Validate every row of ``csv_path``, then append them all as annotations."""
    path = Path(csv_path)
    if not path.is_file():
        raise AlsqlError(f"labels file {str(csv_path)!r} does not exist")
    with engine.connect() as conn:
        proj: Project = get_project(conn, project)
    class_ids = {name: i for i, name in enumerate(proj.classes)}
    base = Path(root) if root else Path.cwd()

    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        key = next((k for k in ("item_id", "uri", "path") if k in header), None)
        if key is None or "label" not in header:
            raise AlsqlError(
                f"{path.name}: expected columns 'label' and one of 'item_id', 'uri', 'path'; found {header}"
            )
        rows: list[tuple[int, Any, int, str | None, datetime | None]] = []
        errors: list[str] = []
        for n, rec in enumerate(reader, start=2):
            where = f"row {n}"
            label = (rec.get("label") or "").strip()
            raw = (rec.get(key) or "").strip()
            if label not in class_ids:
                errors.append(
                    f"{where}: label {label!r} is not a class of project {proj.name!r} "
                    f"(classes: {', '.join(proj.classes)})"
                )
                continue
            if key == "item_id":
                if not raw.isdigit():
                    errors.append(f"{where}: item_id {raw!r} is not an integer")
                    continue
                ref: Any = int(raw)
            elif key == "uri":
                ref = raw
            else:
                ref = path_to_uri(base / raw) if raw else ""
            try:
                when = parse_timestamp((rec.get("created_at") or "").strip(), where, "created_at")
            except AlsqlError as exc:
                errors.append(str(exc))
                continue
            who = (rec.get("annotator") or "").strip() or annotator
            rows.append((n, ref, class_ids[label], who, when))

    found = _resolve_items(engine, key if key == "item_id" else "uri", [r[1] for r in rows])
    for n, ref, *_ in rows:
        if ref not in found:
            errors.append(f"row {n}: {key} {ref!r} is not an item in the database")
    if errors:
        errors.sort(key=lambda e: int(e.split(":")[0].split()[1]))
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise AlsqlError(
            f"{path.name}: {len(errors)} bad row(s), nothing was written:\n  {shown}{more}"
        )

    report = ImportReport(rows=len(rows), dry_run=dry_run)
    for _, _, cid, _, _ in rows:
        name = proj.classes[cid]
        report.per_class[name] = report.per_class.get(name, 0) + 1
    if dry_run or not rows:
        return report
    batch = [
        {
            "project_id": proj.project_id,
            "item_id": found[ref],
            "class_id": cid,
            "annotator": who,
            "created_at": when,
            "source": source,
        }
        for _, ref, cid, who, when in rows
    ]
    with write_transaction(engine) as conn:
        for i in range(0, len(batch), 5000):
            insert_annotations(conn, batch[i : i + 5000])
    report.written = len(batch)
    return report


def _label_rows(engine: Engine, proj: Project) -> Iterator[dict[str, Any]]:
    q = (
        select(
            current_labels.c.item_id,
            items.c.uri,
            classes.c.name.label("label"),
            current_labels.c.annotator,
            current_labels.c.created_at,
            current_labels.c.source,
        )
        .select_from(
            current_labels.join(items, items.c.item_id == current_labels.c.item_id).join(
                classes,
                (classes.c.project_id == current_labels.c.project_id)
                & (classes.c.class_id == current_labels.c.class_id),
            )
        )
        .where(current_labels.c.project_id == proj.project_id)
        .order_by(current_labels.c.item_id)
    )
    with engine.connect() as conn:
        for row in conn.execution_options(stream_results=True, yield_per=5000).execute(q):
            d = dict(row._mapping)
            if d["created_at"] is not None and not isinstance(d["created_at"], str):
                d["created_at"] = d["created_at"].isoformat()
            yield d


def export_labels(engine: Engine, project: str | int, fmt: str, out: IO[str]) -> int:
    """Write the current label of every labeled item as ``csv`` or ``jsonl``; return the count."""
    if fmt not in ("csv", "jsonl"):
        raise AlsqlError(f"--format {fmt!r}: expected csv or jsonl")
    with engine.connect() as conn:
        proj = get_project(conn, project)
    n = 0
    writer = None
    for row in _label_rows(engine, proj):
        if fmt == "jsonl":
            out.write(json.dumps(row) + "\n")
        else:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
        n += 1
    if fmt == "csv" and writer is None:
        out.write("item_id,uri,label,annotator,created_at,source\n")
    return n
