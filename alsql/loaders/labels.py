"""Label import (CSV, validated whole before anything is written) and export.

Import columns: one of ``item_id``, ``uri`` or ``path`` (resolved against ``root``,
default the current folder; a video or sound segment is its file with the segment's
media fragment, ``cam-101/2026-11-02.mp4#t=10,12``, as a ``uri`` or a ``path``), ``label`` (a class name), optional ``annotator`` and
``created_at`` (ISO 8601). Every row is checked first, also by ``dry_run``; nothing is
written unless all pass. Row errors: an unknown class or item (with the project's
classes; a path whose file is a duplicate of an item names that item), an item whose
status is not ``ok`` (corrupt or missing: named with its status), an item_id that is not
a plain ASCII integer in range, text that is not UTF-8, a NUL character, an annotator
longer than the column (the same limit on every backend), and two rows of one annotator
that give one item different labels (different annotators may disagree; rows without an
annotator are ``--annotator``'s, or one unnamed annotator's). A ``path`` matches the
item ingested through a link inside the folder as well as its target. Valid files go in
as one transaction, which also marks the pending round items they answer ``labeled``
(``alsql.loaders.rounds.mark_answered``; not for gold labels), so the queue stops serving them.

Export writes CSV cells that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) with a leading ``'`` (OWASP's advice).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

from sqlalchemy import Engine, select

from alsql.annotate import insert_annotations
from alsql.catalog import Project, get_project
from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.attributes import parse_timestamp
from alsql.loaders.rounds import mark_answered
from alsql.schema import annotations, classes, current_labels, items
from alsql.schema.tables import ANNOTATION_SOURCES, utcnow
from alsql.stores import path_to_uri

__all__ = ["ImportReport", "import_labels", "export_labels", "resolve_references", "fragment_error",
           "MAX_ERRORS_SHOWN"]

MAX_ERRORS_SHOWN = 20
_CHUNK = 500


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    dry_run: bool = False
    per_class: dict[str, int] = field(default_factory=dict)
    closed: int = 0  # pending round items the labels answered, now labeled


def _resolve_items(engine: Engine, key: str, values: list[Any]) -> dict[Any, tuple[int, str]]:
    """Reference -> (item_id, status) for the references that name an item."""
    col = items.c.item_id if key == "item_id" else items.c.uri
    found: dict[Any, tuple[int, str]] = {}
    uniq = list(dict.fromkeys(values))
    with engine.connect() as conn:
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i : i + _CHUNK]
            for k, item_id, status in conn.execute(select(col, items.c.item_id, items.c.status).where(col.in_(part))):
                found[k] = (item_id, status)
    return found


MAX_ITEM_ID = 2**63 - 1
ANNOTATOR_MAX = annotations.c.annotator.type.length
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _parse_item_id(raw: str) -> int | str:
    """The item id of a cell, or the reason it is not one."""
    if not (raw.isascii() and raw.isdigit()):
        return f"item_id {raw!r} is not an integer"
    value = int(raw)
    if not 1 <= value <= MAX_ITEM_ID:
        return f"item_id {raw} is out of range (1 to {MAX_ITEM_ID})"
    return value


def _bad_text(rec: dict[str, Any]) -> str | None:
    """Why a row's cells are unusable text (bytes that are not UTF-8, a NUL), else None."""
    cells = [v for v in rec.values() if isinstance(v, str)]
    joined = "".join(cells)
    if "\x00" in joined:
        return "contains a NUL character"
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(joined[exc.start]) - 0xDC00
        return f"is not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"
    return None


def _split_fragment(raw: str) -> tuple[str, str] | str:
    """``(file part, normalized #t= fragment or "")`` of a uri or path, or why the fragment is
    unusable. Only a trailing ``#t=START,END`` is a fragment (a ``#`` elsewhere is part of a
    file name); its seconds are written as ingest writes them (``#t=10.5,12``)."""
    from alsql.media.kinds import fragment_uri, parse_fragment

    head, start, end = parse_fragment(raw)
    if start is None:
        return raw, ""
    if end is None or not end > start:
        return f"{raw!r}: expected a segment's media fragment #t=START,END in seconds, END after START"
    return head, fragment_uri("", start, end)


def _path_uris(base: Path, raw: str) -> list[str]:
    """The uris a relative ``path`` (with an optional ``#t=`` fragment, kept) may be stored under:
    the file's folder resolved with its own name (an item ingested through a link inside the
    folder), and the fully resolved file."""
    raw, frag = _split_fragment(raw)
    full = Path(os.path.abspath(base / raw))
    try:
        first = (full.parent.resolve() / full.name).as_uri() + frag
    except (OSError, ValueError):
        return [path_to_uri(full) + frag]
    second = path_to_uri(full) + frag
    return [first] if first == second else [first, second]


def _duplicate_of(engine: Engine, base: Path, raw: str) -> str | None:
    """"x.png is a duplicate of item 12 (a/x.png)" when the file's bytes are an item's."""
    from alsql.loaders.confine import read_regular
    from alsql.loaders.ingest import DEFAULT_MAX_BYTES

    full = os.path.abspath(base / raw)
    try:
        _, sha = read_regular(os.path.realpath(full), DEFAULT_MAX_BYTES["image"])
    except (OSError, AlsqlError):
        return None
    with engine.connect() as conn:
        hit = conn.execute(select(items.c.item_id, items.c.uri).where(items.c.sha256 == sha)).first()
    if hit is None:
        return None
    kept = hit.uri
    root = base.resolve().as_uri().rstrip("/") + "/"
    shown = unquote(kept[len(root):]) if kept.startswith(root) else kept
    return f"{raw} is a duplicate of item {hit.item_id} ({shown}); label that item"


def _same_annotator(who: str | None, option: str | None, has_column: bool, source: str) -> str:
    """Why two rows of one item are one annotator's, and how to say they are not."""
    if who is None:
        return ("by one annotator: rows without an annotator are one annotator's; "
                "add an annotator column or pass --annotator")
    if source == "gold" or not has_column or who == option:
        return f"by one annotator: rows without an annotator are by --annotator {who!r}"
    return f"by one annotator, {who!r}: different annotators may disagree, one annotator may not"


def _resolve(engine: Engine, key: str, base: Path, rows: list[tuple]) -> dict[Any, tuple[int, str]]:
    """Row reference -> (item_id, status) for the references that name an item."""
    if key == "item_id":
        return _resolve_items(engine, key, [r[1] for r in rows])
    if key == "uri":  # as written, or with its #t= seconds as ingest writes them
        candidates = {ref: list(dict.fromkeys(["".join(_split_fragment(ref)), ref])) for _, ref, *_ in rows}
    else:
        candidates = {ref: _path_uris(base, ref) for _, ref, *_ in rows if ref}
    by_uri = _resolve_items(engine, "uri", [u for us in candidates.values() for u in us])
    return {ref: by_uri[u] for ref, us in candidates.items() for u in reversed(us) if u in by_uri}


def resolve_references(engine: Engine, key: str, root: str | Path, refs: list[Any]) -> dict[Any, tuple[int, str]]:
    """``{reference: (item_id, status)}`` for the references (cells of column ``key``:
    ``item_id`` ints, ``uri`` or ``path`` text) that name an item, as ``import_labels``
    resolves them (a ``path`` against ``root``; a segment's ``#t=`` fragment kept)."""
    return _resolve(engine, key, Path(root), [(0, r) for r in refs])


def fragment_error(raw: str) -> str | None:
    """Why a uri or path's ``#t=`` fragment cannot name a segment, else None."""
    split = _split_fragment(raw)
    return split if isinstance(split, str) else None


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
    """Validate every row of ``csv_path``, then append them all as annotations.

    ``source`` ``gold``: known labels (docs/quality.md); every row is by ``annotator``
    (the file's annotator column is not used), which must be given.
    """
    if source not in ANNOTATION_SOURCES or source in ("ui", "review"):
        raise AlsqlError(f"source {source!r}: expected one of import, oracle, gold")
    if annotator is not None:
        annotator = annotator.strip()
        if not annotator or len(annotator) > ANNOTATOR_MAX or _bad_text({"annotator": annotator}):
            raise AlsqlError(f"--annotator {annotator!r}: expected a name of 1 to {ANNOTATOR_MAX} printable characters")
    if source == "gold" and annotator is None:
        raise AlsqlError("gold labels need an annotator name (--annotator; default 'gold')")
    path = Path(csv_path)
    if not path.is_file():
        raise AlsqlError(f"labels file {str(csv_path)!r} does not exist")
    with engine.connect() as conn:
        proj: Project = get_project(conn, project)
    class_ids = {name: i for i, name in enumerate(proj.classes)}
    base = Path(root) if root else Path.cwd()

    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
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
            bad = _bad_text(rec)
            if bad:
                errors.append(f"{where}: {bad}")
                continue
            if rec.get(None):  # more cells than the header: an unquoted #t=START,END, most often
                errors.append(f"{where}: {len(header) + len(rec[None])} cells under {len(header)} columns; "
                              f"quote a {key} that holds a comma, as in \"cam-1.mp4#t=10,12\"")
                continue
            label = (rec.get("label") or "").strip()
            raw = (rec.get(key) or "").strip()
            if label not in class_ids:
                errors.append(
                    f"{where}: label {label!r} is not a class of project {proj.name!r} "
                    f"(classes: {', '.join(proj.classes)})"
                )
                continue
            if key == "item_id":
                ref: Any = _parse_item_id(raw)
                if isinstance(ref, str):
                    errors.append(f"{where}: {ref}")
                    continue
            else:  # a uri or path; a segment's #t= fragment is written as ingest writes it
                split = _split_fragment(raw)
                if isinstance(split, str):
                    errors.append(f"{where}: {key} {split}")
                    continue
                ref = raw
            try:
                when = parse_timestamp((rec.get("created_at") or "").strip(), where, "created_at")
            except AlsqlError as exc:
                errors.append(str(exc))
                continue
            who = annotator if source == "gold" else ((rec.get("annotator") or "").strip() or annotator)
            if who is not None and len(who) > ANNOTATOR_MAX:
                errors.append(f"{where}: annotator is {len(who)} characters long; at most {ANNOTATOR_MAX}")
                continue
            rows.append((n, ref, class_ids[label], who, when))

    found = _resolve(engine, key, base, rows)
    # (item_id, annotator) -> (row, class_id) of its first row: annotators may disagree.
    first: dict[tuple[int, str | None], tuple[int, int]] = {}
    for n, ref, cid, who, _ in rows:
        if ref not in found:
            dup = _duplicate_of(engine, base, ref) if key == "path" and ref and "#t=" not in ref else None
            errors.append(f"row {n}: {dup or f'{key} {ref!r} is not an item in the database'}")
            continue
        item_id, status = found[ref]
        if status != "ok":
            errors.append(f"row {n}: item {item_id} ({key} {ref!r}) has status {status!r}; "
                          "only items with status 'ok' can be labeled")
            continue
        seen = first.setdefault((item_id, who), (n, cid))
        if seen[1] != cid:
            errors.append(
                f"row {n}: item {item_id} is also in row {seen[0]} with label {proj.classes[seen[1]]!r}, "
                f"here {proj.classes[cid]!r} (conflicting labels for one item in one file "
                f"{_same_annotator(who, annotator, 'annotator' in header, source)})"
            )
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
            "item_id": found[ref][0],
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
        if source != "gold":  # answered: the queue no longer serves them (gold items are served on purpose)
            report.closed = mark_answered(conn, proj.project_id, [r["item_id"] for r in batch], utcnow())
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


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: ``'`` before a leading = + - @ tab or CR."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


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
            writer.writerow({k: _cell(v) for k, v in row.items()})
        n += 1
    if fmt == "csv" and writer is None:
        out.write("item_id,uri,label,annotator,created_at,source\n")
    return n
