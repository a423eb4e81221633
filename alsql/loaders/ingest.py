"""Ingest: one ``items`` row per image under a folder or blob prefix.

Each object is read once, bounded: at most ``max_bytes`` per kind (``DEFAULT_MAX_BYTES``,
``--max-bytes``), hashed as it is read (sha256: the dedup key), and probed by
``alsql.media.image.probe`` (header pixel limit ``max_pixels``, then a cheap full-decode
check that catches truncated files). A local folder is read confined
(``alsql.loaders.confine``): regular files inside the folder only; a link that leaves it,
a FIFO, device or socket, a file over the size cap and an image over the pixel limit are
recorded with status ``corrupt`` and an ``error`` starting ``refused:`` (or ``too many
pixels:``), their bytes never read or decoded. A name that is not UTF-8 is ingested under
a percent-encoded uri; a folder that cannot be read is a warning in the report.

A file already present (same uri) is not added again; one with the same sha256 as an
item is a *duplicate*: not added, and reported with the item kept. An item that is
``corrupt`` or ``missing`` is read again on every ingest and set ``ok`` (same item_id)
when it now reads. With ``update=True`` the entity (regex) and the attributes CSV are
applied again to items already present. Rows are inserted in batches with
``ON CONFLICT DO NOTHING`` inside a write transaction, so two ingests of the same folder
at once end with no duplicate. Memory stays bounded: the listing streams and at most one
batch is in flight.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import Connection, Engine, bindparam, insert, select
from sqlalchemy import update as sql_update

from alsql.db import write_transaction
from alsql.errors import AlsqlError
from alsql.loaders.attributes import read_attributes
from alsql.loaders.ingest_media import MEDIA_EXTENSIONS, MediaIngest
from alsql.loaders.writer import analyze_tables
from alsql.loaders.confine import Entry, NotRegular, printable, read_regular, walk
from alsql.media import image as image_media
from alsql.schema import items
from alsql.stores import BlobMissing, BlobTooLarge, path_to_uri, read_capped, store_for, uri_to_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_BYTES",
    "Duplicate",
    "IngestReport",
    "ingest",
    "probe_image",
    "source_uri",
    "parse_size",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Largest file read per kind of item (bytes); ``--max-bytes`` overrides.
DEFAULT_MAX_BYTES: dict[str, int] = {"image": 256 * 2**20, "video": 64 * 2**30, "audio": 64 * 2**30}
MAX_LISTED = 1000  # duplicates and warnings kept in the report (all are counted)
_BAD_IMAGE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Duplicate:
    """A file not added because item ``kept_id`` (at ``kept``) has the same bytes."""

    path: str
    kept_id: int
    kept: str

    def __str__(self) -> str:
        return f"{self.path} is a duplicate of item {self.kept_id} ({self.kept})"


@dataclass
class IngestReport:
    """Counts of one ingest. ``corrupt`` includes ``refused`` (never read or decoded);
    ``present`` includes duplicates; ``repaired`` items were corrupt/missing and now read."""

    new: int = 0
    present: int = 0
    corrupt: int = 0
    missing: int = 0
    refused: int = 0
    repaired: int = 0
    updated: int = 0
    duplicate_count: int = 0
    warning_count: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.new + self.present

    def warn(self, text: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_LISTED:
            self.warnings.append(text)
        log.warning("ingest: %s", text)

    def duplicate(self, dup: Duplicate) -> None:
        self.duplicate_count += 1
        if len(self.duplicates) < MAX_LISTED:
            self.duplicates.append(dup)

    def __str__(self) -> str:
        text = f"{self.new} new, {self.present} already present, {self.corrupt} corrupt"
        extra = [
            (self.refused, "refused"), (self.missing, "missing"), (self.repaired, "repaired"),
            (self.updated, "updated"), (self.duplicate_count, "duplicate" if self.duplicate_count == 1 else "duplicates"),
            (self.warning_count, "warning" if self.warning_count == 1 else "warnings"),
        ]
        return text + "".join(f", {n} {what}" for n, what in extra if n)

    def details(self, limit: int = 20) -> list[str]:
        """Lines for a person: the first ``limit`` duplicates and warnings, and how many more."""
        lines = [str(d) for d in self.duplicates[:limit]]
        if self.duplicate_count > limit:
            lines.append(f"... and {self.duplicate_count - limit} more duplicates")
        lines += [f"warning: {w}" for w in self.warnings[:limit]]
        if self.warning_count > limit:
            lines.append(f"... and {self.warning_count - limit} more warnings")
        return lines


def parse_size(text: str | int) -> int:
    """``"256M"``, ``"2G"``, ``"1500"`` -> bytes (K, M, G, T are powers of 1024)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not m or int(m.group(1)) <= 0:
        raise AlsqlError(f"size {text!r}: expected a positive number of bytes, e.g. 500M or 2G")
    return int(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " ")


def source_uri(source: str) -> str:
    """A folder path or a store URI -> the URI prefix to list."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+://", source):
        return source
    path = Path(source)
    if not path.exists():
        raise AlsqlError(f"ingest source {source!r} does not exist (expected a folder or a store URI)")
    return path_to_uri(path)


def probe_image(data: bytes, max_pixels: int | None = None) -> dict[str, Any]:
    """sha256, media type, width and height of image bytes; ``status='corrupt'`` if unreadable."""
    row: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest()}
    row.update(_probe(data, max_pixels))
    return row


def _probe(data: bytes, max_pixels: int | None) -> dict[str, Any]:
    try:
        return {**image_media.probe(data, max_pixels), "status": "ok"}
    except image_media.TooManyPixels as exc:
        return {"status": "corrupt", "error": str(exc), "_refused": True}
    except _BAD_IMAGE as exc:
        return {"status": "corrupt", "error": f"{exc.__class__.__name__}: {exc}"[:500]}


def _relative(uri: str, prefix: str) -> str:
    return uri[len(prefix) :].lstrip("/") if uri.startswith(prefix) else uri


def _batched(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(it)
    while batch := list(islice(it, n)):
        yield batch


def _insert_ignore(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows, skipping any that collide on uri or sha256; return the uris that went in."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = dialect_insert(items).on_conflict_do_nothing().returning(items.c.uri)
        return set(conn.execute(stmt, rows).scalars())
    from sqlalchemy.exc import IntegrityError

    added: set[str] = set()
    for row in rows:  # SQL Server: a savepoint per row keeps the batch going
        try:
            with conn.begin_nested():
                conn.execute(insert(items), row)
            added.add(row["uri"])
        except IntegrityError:
            pass
    return added


def _holders(conn: Connection, shas: list[str]) -> dict[str, tuple[int, str]]:
    """sha256 -> (item_id, uri) of the items holding those hashes."""
    if not shas:
        return {}
    q = select(items.c.sha256, items.c.item_id, items.c.uri).where(items.c.sha256.in_(shas))
    return {s: (i, u) for s, i, u in conn.execute(q)}


def _max_bytes(max_bytes: int | str | dict[str, int] | None) -> dict[str, int]:
    caps = dict(DEFAULT_MAX_BYTES)
    if isinstance(max_bytes, dict):
        caps.update({k: parse_size(v) for k, v in max_bytes.items()})
    elif max_bytes is not None:
        caps = {k: parse_size(max_bytes) for k in caps}
    return caps


def ingest(
    engine: Engine,
    source: str,
    *,
    entity_regex: str | None = None,
    attributes_csv: str | Path | None = None,
    batch_size: int = 1000,
    workers: int | None = None,
    max_bytes: int | str | dict[str, int] | None = None,
    max_pixels: int | None = None,
    update: bool = False,
    on_progress: Callable[[IngestReport], None] | None = None,
    segment: float | None = None,
    stride: float | None = None,
) -> IngestReport:
    """Index every image under ``source`` (a folder or ``az://container/prefix``).

    ``entity_regex`` is searched in the path relative to ``source``; its group
    ``entity`` (or first group, or whole match) becomes the entity.
    ``attributes_csv`` has a ``path`` column (relative to ``source``) and optional
    entity, captured_at, latitude, longitude; other columns go to ``attributes``.
    ``workers`` reads run at once (default: 1 for a local folder, 16 for a remote store).
    ``max_bytes``: one cap for every kind, or ``{kind: bytes}`` over ``DEFAULT_MAX_BYTES``.
    ``max_pixels``: the image pixel limit (default: the ``max_pixels`` setting, 64 MP).
    ``update``: apply ``entity_regex`` and ``attributes_csv`` again to items already present.
    Video and sound files go to ``alsql.loaders.ingest_media`` (one item per ``segment``
    seconds every ``stride`` seconds; defaults per kind).
    """
    prefix = source_uri(source)
    store = store_for(prefix)
    pattern = None
    if entity_regex:
        try:
            pattern = re.compile(entity_regex)
        except re.error as exc:
            raise AlsqlError(f"--entity-regex {entity_regex!r} is not a valid regular expression: {exc}") from None
    attrs = read_attributes(attributes_csv) if attributes_csv else {}
    if update and pattern is None and not attrs:
        raise AlsqlError("--update re-applies --entity-regex and --attributes: give at least one of them")
    caps = _max_bytes(max_bytes)
    image_cap = caps["image"]
    pixels = int(max_pixels) if max_pixels is not None else image_media.max_pixels_setting()
    if pixels <= 0:
        raise AlsqlError(f"--max-pixels {max_pixels}: expected a positive number of pixels")
    report = IngestReport()
    local = prefix.startswith("file:")

    def entity_of(rel: str) -> str | None:
        if pattern is None:
            return None
        m = pattern.search(rel)
        if not m:
            return None
        if "entity" in m.re.groupindex:
            return m.group("entity")
        return m.group(1) if m.re.groups else m.group(0)

    def derived(rel: str) -> dict[str, Any]:
        """The columns that come from the path: entity (regex), then the CSV's values."""
        row: dict[str, Any] = {"entity": entity_of(rel), "captured_at": None, "latitude": None,
                               "longitude": None, "attributes": None}
        if rel in attrs:
            row.update({k: v for k, v in attrs[rel].items() if v is not None})
        return row

    def updated(rel: str) -> dict[str, Any]:
        """For ``update``: entity from the regex (when given), the CSV's columns for its paths."""
        vals: dict[str, Any] = {}
        if pattern is not None:
            vals["entity"] = entity_of(rel)
        a = attrs.get(rel)
        if a is not None:
            vals.update({k: a[k] for k in ("captured_at", "latitude", "longitude", "attributes")})
            if a["entity"] is not None:
                vals["entity"] = a["entity"]
        return vals

    def read(e: Entry) -> dict[str, Any]:
        row: dict[str, Any] = {"uri": e.uri, "sha256": None}
        if e.problem:
            return {**row, "status": "corrupt", "error": e.problem, "_refused": True}
        try:
            if e.path is not None:
                data, row["sha256"] = read_regular(e.path, image_cap, e.uri)
            else:
                data = read_capped(store, e.uri, image_cap)
                row["sha256"] = hashlib.sha256(data).hexdigest()
        except (BlobMissing, FileNotFoundError) as exc:
            return {**row, "status": "missing", "error": f"missing: {exc}"[:500]}
        except BlobTooLarge as exc:
            what = f"{exc.size:,} bytes" if exc.size is not None else "more bytes"
            return {**row, "status": "corrupt", "_refused": True,
                    "error": f"refused: {what} over the limit of {exc.max_bytes:,} bytes (--max-bytes)"}
        except NotRegular as exc:
            return {**row, "status": "corrupt", "error": str(exc), "_refused": True}
        except OSError as exc:
            return {**row, "status": "corrupt", "error": f"unreadable: {exc.strerror or exc}"[:500]}
        row.update(_probe(data, pixels))
        return row

    if local:
        entries: Iterable[Entry] = walk(uri_to_path(prefix), report.warn)
    else:
        entries = (Entry(u, _relative(u, prefix), None) for u in store.list(prefix))
    kept = IMAGE_EXTENSIONS | MEDIA_EXTENSIONS
    listing = (e for e in entries if os.path.splitext(e.rel.rsplit("?", 1)[0])[1].lower() in kept)

    if workers is None:  # local disks answer in microseconds; remote stores need reads in flight
        workers = 1 if local else 16
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    media = MediaIngest(engine, prefix, store, report, entity_of=entity_of, attrs=attrs, segment=segment,
                        stride=stride, max_bytes=caps, pool=pool)
    try:
        for batch in _batched(listing, batch_size):
            batch = media.take(batch)  # video and sound files are ingested there; images stay
            _one_batch(engine, batch, read, derived, pool, updated if update else None, prefix, report)
            if on_progress:
                on_progress(report)
    finally:
        if pool:
            pool.shutdown()
        if attributes_csv:
            attrs.close()  # the CSV's rows sit in a temporary database: delete it
    if report.new:  # planner statistics follow the grown tables (selection plans need them)
        analyze_tables(engine, "items", "sources")
    return report


def _one_batch(engine: Engine, batch: list[Entry], read: Callable[[Entry], dict[str, Any]],
               derived: Callable[[str], dict[str, Any]], pool: ThreadPoolExecutor | None,
               update: Callable[[str], dict[str, Any]] | None, prefix: str, report: IngestReport) -> None:
    uris = list(dict.fromkeys(e.uri for e in batch))
    with engine.connect() as conn:
        known = {u: (i, s) for u, i, s in conn.execute(
            select(items.c.uri, items.c.item_id, items.c.status).where(items.c.uri.in_(uris)))}
    fresh: list[Entry] = []
    recheck: list[Entry] = []
    changes: list[dict[str, Any]] = []
    taken: set[str] = set()
    for e in batch:
        if e.uri in taken:  # a link inside the folder and its target: one item
            report.present += 1
            continue
        taken.add(e.uri)
        hit = known.get(e.uri)
        if hit is None:
            fresh.append(e)
            continue
        report.present += 1
        if hit[1] != "ok":
            recheck.append(e)
        if update is not None:
            vals = update(e.rel)
            if vals:
                changes.append({"_id": hit[0], **{f"v_{k}": v for k, v in vals.items()}})
    todo = fresh + recheck
    probed = list(pool.map(read, todo)) if pool else [read(e) for e in todo]
    rel_of = {e.uri: e.rel for e in todo}
    rows = []
    for row in probed[: len(fresh)]:
        row.setdefault("error", None)
        row.setdefault("media_type", None)
        row.setdefault("width", None)
        row.setdefault("height", None)
        refused = row.pop("_refused", False)
        row.update(derived(rel_of[row["uri"]]))
        rows.append((row, refused))
    fixed = probed[len(fresh):]
    if not rows and not fixed and not changes:
        return
    with write_transaction(engine) as conn:
        added = _insert_ignore(conn, [r for r, _ in rows]) if rows else set()
        left = [r for r, _ in rows if r["uri"] not in added]
        good = [r for r in fixed if r["status"] == "ok"]
        holders = _holders(conn, list({r["sha256"] for r in left + good if r["sha256"]}))
        for row, refused in rows:
            if row["uri"] in added:
                report.new += 1
                report.corrupt += row["status"] == "corrupt"
                report.missing += row["status"] == "missing"
                report.refused += bool(refused)
                continue
            report.present += 1  # same uri from a concurrent ingest, or the same bytes as an item
            kept = holders.get(row["sha256"]) if row["sha256"] else None
            if kept is not None and kept[1] != row["uri"]:
                report.duplicate(Duplicate(printable(rel_of[row["uri"]]), kept[0], printable(_relative(kept[1], prefix))))
        for row in fixed:
            item_id = known[row["uri"]][0]
            kept = holders.get(row["sha256"]) if row["status"] == "ok" else None
            if kept is not None and kept[0] != item_id:
                report.duplicate(Duplicate(printable(rel_of[row["uri"]]), kept[0], printable(_relative(kept[1], prefix))))
                continue
            values = {k: row.get(k) for k in ("sha256", "media_type", "width", "height", "status", "error")}
            if row["status"] != "ok":  # still unreadable: keep what was known, record the newest reason
                values = {"status": row["status"], "error": row.get("error")}
            conn.execute(sql_update(items).where(items.c.item_id == item_id).values(**values))
            report.repaired += row["status"] == "ok"
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for ch in changes:
            groups.setdefault(tuple(sorted(ch)), []).append(ch)
        for keys, group in groups.items():
            cols = [k[2:] for k in keys if k.startswith("v_")]
            stmt = sql_update(items).where(items.c.item_id == bindparam("_id")).values(
                {c: bindparam(f"v_{c}") for c in cols})
            conn.execute(stmt, group)
            report.updated += len(group)
